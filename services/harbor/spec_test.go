package harbor_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// specPath is the Pluggable Scanner API v1.2, copied from
// ../shared/fixtures/harbor-scanner-api (testdata/SOURCES.md).
const specPath = "testdata/scanner-adapter-openapi-v1.2.yaml"

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// loadSpec parses the spec once per test binary. The vulnerability
// report's media type does not end in +json, so kin-openapi is told it is
// JSON.
func loadSpec(t testing.TB) routers.Router {
	t.Helper()
	specOnce.Do(func() {
		openapi3filter.RegisterBodyDecoder("application/vnd.security.vulnerability.report", openapi3filter.JSONBodyDecoder)
		raw, err := os.ReadFile(specPath)
		if err != nil {
			specErr = err
			return
		}
		doc, err := openapi3.NewLoader().LoadFromData(raw)
		if err != nil {
			specErr = err
			return
		}
		specRouter, specErr = gorillamux.NewRouter(doc)
	})
	if specErr != nil {
		t.Fatalf("load %s: %v", specPath, specErr)
	}
	return specRouter
}

// authenticated checks the spec's security schemes the way Harbor fills
// them: a bearer token (or Basic credentials) in Authorization.
func authenticated(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	switch in.SecurityScheme.Scheme {
	case "bearer":
		if strings.HasPrefix(strings.ToLower(h), "bearer ") {
			return nil
		}
	case "basic":
		if strings.HasPrefix(strings.ToLower(h), "basic ") {
			return nil
		}
	}
	return in.NewError(nil)
}

// exchange is one request to the adapter and its answer, both checked
// against the spec: the request must be one Harbor may send, the answer
// one the spec allows for it (status, headers, media type, body schema).
type exchange struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

// do sends req (body may be nil) and validates both sides; a request the
// test sends on purpose outside the spec (wrong types, unknown media
// types) sets validateRequest false, and answers the spec has no status
// for (401) are checked by the caller.
func do(t testing.TB, client *http.Client, req *http.Request, body []byte, validateRequest bool) exchange {
	t.Helper()
	router := loadSpec(t)
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not a route of the spec: %v", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: authenticated, IncludeResponseStatus: true}}
	if validateRequest {
		if body != nil {
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			t.Fatalf("request %s %s does not follow the spec: %v", req.Method, req.URL, err)
		}
	}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
			Header: resp.Header, Body: io.NopCloser(bytes.NewReader(got)), Options: in.Options}
		if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
			t.Fatalf("answer to %s %s does not follow the spec: %v\nstatus %d %v\n%s", req.Method, req.URL, err, resp.StatusCode, resp.Header, got)
		}
	}
	return exchange{status: resp.StatusCode, header: resp.Header, body: got, took: took}
}
