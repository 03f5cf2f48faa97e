package customs_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer/malware"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/store"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// randomAWSKey returns an access key id and secret in AWS's format (not
// the documented EXAMPLE pair, which scanners allowlist).
func randomAWSKey(t *testing.T) (string, string) {
	t.Helper()
	const upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	pick := func(alphabet string, n int) string {
		var b strings.Builder
		for range n {
			i, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
			if err != nil {
				t.Fatal(err)
			}
			b.WriteByte(alphabet[i.Int64()])
		}
		return b.String()
	}
	return "AKIA" + pick(upper, 16), pick(b64, 40)
}

func privateKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// xmrigConfig is XMRig's config.json format.
const xmrigConfig = `{
    "autosave": true,
    "cpu": {"enabled": true, "huge-pages": true, "max-threads-hint": 100},
    "donate-level": 1,
    "pools": [
        {
            "algo": null,
            "coin": "monero",
            "url": "pool.supportxmr.com:443",
            "user": "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A",
            "pass": "x",
            "keepalive": true,
            "tls": true
        }
    ]
}
`

// Push an image carrying malware, secrets and risky config to a real
// registry and read the verdict and findings back — and check that no
// full secret is written anywhere: report, S3 object, NATS message, logs.
func TestThreatsAreReportedAndSecretsNeverStored(t *testing.T) {
	var logs svcmaintest.LogBuffer
	cfg := testConfig(t)
	cfg.Log = zerolog.New(&logs).Level(zerolog.DebugLevel)
	st := startStack(t, cfg)

	keyID, secret := randomAWSKey(t)
	pemKey := privateKeyPEM(t)
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	threats := scantest.Layer(t,
		scantest.Reg("opt/app/eicar.com", string(malware.EICAR())),
		scantest.Reg("tmp/.x/config.json", xmrigConfig),
		scantest.Reg("app/.env", "AWS_ACCESS_KEY_ID="+keyID+"\nAWS_SECRET_ACCESS_KEY="+secret+"\n"),
		scantest.Reg("app/deploy.pem", pemKey),
	)
	// The key is deleted in a later layer: it is still in the pullable image.
	cleanup := scantest.Layer(t, scantest.Whiteout("app/deploy.pem"))
	img := scantest.Image(t, base, threats, cleanup)
	digest := push(t, st, "testbed/threats:latest", img)
	r := waitReport(t, st.ResultsURL, digest)

	if r.Verdict != report.VerdictQuarantine || r.VerdictRule == "" {
		t.Errorf("verdict %q rule %q reason %q", r.Verdict, r.VerdictRule, r.VerdictReason)
	}
	type key struct{ kind, path string }
	got := map[key]report.Finding{}
	for _, f := range r.Findings {
		got[key{f.Kind, f.Path}] = f
	}
	threatLayer := layerDigest(t, threats)
	for _, want := range []key{
		{report.KindMalware, "opt/app/eicar.com"},
		{report.KindMalware, "tmp/.x/config.json"},
		{report.KindSecret, "app/.env"},
		{report.KindSecret, "app/deploy.pem"},
	} {
		f, ok := got[want]
		if !ok {
			t.Errorf("no %s finding at %s; findings: %+v", want.kind, want.path, r.Findings)
			continue
		}
		if f.Layer != threatLayer {
			t.Errorf("%s at %s attributed to layer %s, want %s", want.kind, want.path, f.Layer, threatLayer)
		}
	}

	// The full secrets appear nowhere.
	secrets := []string{secret, strings.TrimSpace(strings.Split(pemKey, "\n")[1])}
	assertNoSecret := func(where string, data []byte) {
		t.Helper()
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("a full secret appears in %s", where)
			}
		}
	}
	resp, err := http.Get(st.ResultsURL + "/v1/reports/" + digest)
	if err != nil {
		t.Fatal(err)
	}
	apiBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assertNoSecret("the report served by the API", apiBody)

	ctx := context.Background()
	bucket, err := store.NewS3(ctx, store.S3Config{Bucket: "customs-reports", Endpoint: st.S3URL, PathStyle: true,
		AccessKeyID: st.S3AccessKeyID, SecretAccessKey: st.S3SecretAccessKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := bucket.List(ctx, "", 0)
	if err != nil || len(keys) == 0 {
		t.Fatalf("list bucket: %v %v", keys, err)
	}
	for _, k := range keys {
		obj, err := bucket.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		assertNoSecret("S3 object "+k, obj)
	}

	nc, err := nats.Connect(st.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, name := range []string{queue.ReportsStream, queue.JobsStream, queue.DLQStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := s.Info(ctx)
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				continue
			}
			assertNoSecret(name+" message", m.Data)
			ev := &customsv1.ScanCompleted{}
			if name == queue.ReportsStream && proto.Unmarshal(m.Data, ev) == nil {
				zr, err := gzip.NewReader(bytes.NewReader(ev.GetReport()))
				if err == nil {
					plain, _ := io.ReadAll(zr)
					assertNoSecret("a report event", plain)
				}
			}
		}
	}
	assertNoSecret("the logs", []byte(logs.String()))
	if !strings.Contains(logs.String(), "scan complete") {
		t.Errorf("the logs were not captured: %q", logs.String())
	}
}
