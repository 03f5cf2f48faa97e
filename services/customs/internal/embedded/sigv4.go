package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// gofakes3 checks no credentials at all; requireSigV4 puts an AWS
// Signature Version 4 check in front of it: the request must be signed
// with the generated key pair, which is verified by signing the request's
// signed parts again with the secret and comparing signatures.
func requireSigV4(creds aws.Credentials, next http.Handler) http.Handler {
	signer := v4.NewSigner(func(o *v4.SignerOptions) {
		// S3 signs the path as sent, not escaped twice.
		o.DisableURIPathEscaping = true
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := verifySigV4(r.Context(), signer, creds, r, time.Now()); err != nil {
			writeS3Error(w, http.StatusForbidden, "AccessDenied", err.Error())
			return
		}
		if body, ok := bodyChecker(r); ok {
			r.Body = body
		}
		next.ServeHTTP(w, r)
	})
}

// maxSkew is how far X-Amz-Date may be from now (AWS allows 15 minutes).
const maxSkew = 15 * time.Minute

type authHeader struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
}

func parseAuthorization(v string) (authHeader, error) {
	var a authHeader
	algo, rest, ok := strings.Cut(v, " ")
	if !ok || algo != "AWS4-HMAC-SHA256" {
		return a, errors.New("request is not signed with AWS Signature Version 4 (AWS4-HMAC-SHA256)")
	}
	for _, part := range strings.Split(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			f := strings.Split(val, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return a, fmt.Errorf("malformed credential scope %q", val)
			}
			a.accessKey, a.date, a.region, a.service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			a.signedHeaders = strings.Split(val, ";")
		case "Signature":
			a.signature = val
		}
	}
	if a.accessKey == "" || len(a.signedHeaders) == 0 || a.signature == "" {
		return a, errors.New("authorization header lacks Credential, SignedHeaders or Signature")
	}
	return a, nil
}

func verifySigV4(ctx context.Context, signer *v4.Signer, creds aws.Credentials, r *http.Request, now time.Time) error {
	if r.URL.Query().Has("X-Amz-Signature") {
		return errors.New("presigned URLs are not accepted here")
	}
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return errors.New("anonymous requests are not accepted: sign with the credentials customs up generated")
	}
	got, err := parseAuthorization(authz)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(got.accessKey), []byte(creds.AccessKeyID)) != 1 {
		return errors.New("unknown access key")
	}
	if got.service != "s3" {
		return fmt.Errorf("credential scope names service %q, want s3", got.service)
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return errors.New("missing or malformed X-Amz-Date")
	}
	if d := now.Sub(when); d > maxSkew || d < -maxSkew {
		return fmt.Errorf("request time %s is more than %s from the server's", when.Format(time.RFC3339), maxSkew)
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		return errors.New("missing X-Amz-Content-Sha256")
	}

	// A bare request carrying exactly the headers the client signed: the
	// signer signs every header it is given (bar a fixed ignore list).
	u := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	re, err := http.NewRequestWithContext(ctx, r.Method, u.String(), nil)
	if err != nil {
		return fmt.Errorf("rebuild request: %w", err)
	}
	re.Host = r.Host
	for _, h := range got.signedHeaders {
		switch h {
		case "host":
		case "content-length":
			n, err := strconv.ParseInt(r.Header.Get("Content-Length"), 10, 64)
			if err != nil {
				n = r.ContentLength
			}
			re.ContentLength = n
		default:
			vs := r.Header.Values(h)
			if len(vs) == 0 {
				return fmt.Errorf("signed header %s is missing", h)
			}
			re.Header[http.CanonicalHeaderKey(h)] = vs
		}
	}
	if err := signer.SignHTTP(ctx, creds, re, payload, got.service, got.region, when); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	want, err := parseAuthorization(re.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	if strings.Join(want.signedHeaders, ";") != strings.Join(got.signedHeaders, ";") {
		return errors.New("signature does not cover the required headers")
	}
	if subtle.ConstantTimeCompare([]byte(want.signature), []byte(got.signature)) != 1 {
		return errors.New("signature does not match")
	}
	return nil
}

// bodyChecker makes a body whose hash was signed fail its read when the
// bytes don't match, so a tampered body is never stored. Streaming and
// unsigned payloads are left as they are.
func bodyChecker(r *http.Request) (io.ReadCloser, bool) {
	want, err := hex.DecodeString(r.Header.Get("X-Amz-Content-Sha256"))
	if err != nil || len(want) != sha256.Size || r.Body == nil {
		return nil, false
	}
	return &hashedBody{ReadCloser: r.Body, h: sha256.New(), want: want}, true
}

type hashedBody struct {
	io.ReadCloser
	h    hash.Hash
	want []byte
}

func (b *hashedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.h.Write(p[:n])
	if errors.Is(err, io.EOF) && !bytes.Equal(b.h.Sum(nil), b.want) {
		return n, errors.New("body does not match X-Amz-Content-Sha256")
	}
	return n, err
}

func writeS3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	var esc bytes.Buffer
	_ = xml.EscapeText(&esc, []byte(msg))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, esc.String())
}
