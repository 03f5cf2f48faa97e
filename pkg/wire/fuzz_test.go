package wire_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

const fuzzDigest = "sha256:6e3d7f910f1db7976dd42dca966c8d5d6525a03e0b813708c5b325ede094c338"

func fuzzReport() *report.Report {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	r := &report.Report{
		Artifact:   report.Artifact{Registry: "registry.example.com", Repository: "team/app", Digest: fuzzDigest, Tags: []string{"v1"}},
		StartedAt:  at,
		FinishedAt: at.Add(time.Second),
		Status:     report.StatusComplete,
		OS:         report.OS{ID: "debian", Version: "12"},
		Packages:   []report.Package{{Name: "bash", Version: "5.2.15-2+b2", Ecosystem: "Debian:12", Path: "var/lib/dpkg/status"}},
		Vulnerabilities: []report.Vulnerability{{ID: "CVE-2024-1", Package: "bash", Version: "5.2.15-2+b2", Severity: report.SeverityHigh,
			Aliases: []string{"DSA-1"}}},
		Findings:    []report.Finding{{Kind: report.KindSecret, Rule: "aws-access-token", Severity: report.SeverityCritical, Path: "app/.env", Line: 3, Excerpt: "AKIA…XY"}},
		Verdict:     report.VerdictQuarantine,
		VerdictRule: "default:live-credential",
		RequestedAt: &at,
	}
	r.Normalize()
	return r
}

func fuzzEvent(t testing.TB, ev *customsv1.ScanCompleted) []byte {
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecode decodes arbitrary report events with
// (&wire.Reader{}).Decode and a nil signer (so every input reaches the
// protobuf, gzip and JSON decoders). The seeds include events whose
// report is plain JSON (encoding ""), so that mutations reach the report
// decoder. It checks that nothing panics; that a failure is a permanent
// error (the message itself is bad) unless it names the object store;
// that a decoded report has a digest, the event's when it names one; that
// the report re-encodes with EncodeReport into an event that decodes to
// the same report; and that signing the input with a key gives the same
// outcome, while a signature over another subject is refused.
func FuzzDecode(f *testing.F) {
	r := fuzzReport()
	body, err := wire.EncodeReport(r)
	if err != nil {
		f.Fatal(err)
	}
	plain, err := json.Marshal(r)
	if err != nil {
		f.Fatal(err)
	}
	sum := sha256.Sum256(body)
	at := timestamppb.New(r.FinishedAt)
	for _, ev := range []*customsv1.ScanCompleted{
		{JobId: "j1", Registry: "registry.example.com", Repository: "team/app", Digest: fuzzDigest, Verdict: r.Verdict, Status: r.Status,
			ReportEncoding: "gzip", ReportSha256: hex.EncodeToString(sum[:]), Report: body, FinishedAt: at, RequestedAt: at},
		{Digest: fuzzDigest, Report: plain},
		{Report: []byte(`{"artifact":{"digest":"sha256:x"},"packages":null,"findings":[{}],"started_at":"2024-01-01T00:00:00+02:00","requested_at":null}`)},
		{Digest: fuzzDigest, Status: report.StatusFailed, Error: "boom", Report: []byte(`{"artifact":{"digest":"` + fuzzDigest + `"},"status":"failed","error":"boom","latest_attempt":{"status":"failed"}}`)},
		{Digest: fuzzDigest, ReportObject: "sha256-" + hex.EncodeToString(sum[:]), ReportSha256: hex.EncodeToString(sum[:]), ReportEncoding: "gzip"},
		{Digest: fuzzDigest, ReportEncoding: "zstd", Report: body},
	} {
		f.Add(fuzzEvent(f, ev))
	}
	signer, err := wire.NewSigner(strings.Repeat("k", wire.MinKeyBytes))
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	subject := wire.ReportSubject(fuzzDigest)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := (&wire.Reader{}).Decode(ctx, subject, nil, data)
		h := nats.Header{}
		h.Set(wire.SignatureHeader, signer.Sign(subject, data))
		signed, serr := (&wire.Reader{Signer: signer}).Decode(ctx, subject, h, data)
		if (err == nil) != (serr == nil) {
			t.Fatalf("unsigned reader: %v; signed reader: %v", err, serr)
		}
		if _, err := (&wire.Reader{Signer: signer}).Decode(ctx, subject+".other", h, data); !errors.Is(err, wire.ErrBadSignature) {
			t.Fatalf("signature over another subject: %v, want ErrBadSignature", err)
		}
		if err != nil {
			if got != nil {
				t.Fatalf("Decode returned an event and %v", err)
			}
			if !queue.IsPermanent(err) && !strings.Contains(err.Error(), "object") {
				t.Fatalf("error is not permanent: %v", err)
			}
			return
		}
		rep := got.Report
		if rep == nil || rep.Artifact.Digest == "" {
			t.Fatalf("decoded event without a report digest: %+v", got)
		}
		var ev customsv1.ScanCompleted
		if err := proto.Unmarshal(data, &ev); err != nil {
			t.Fatalf("Decode accepted what proto.Unmarshal refuses: %v", err)
		}
		if ev.GetDigest() != "" && ev.GetDigest() != rep.Artifact.Digest {
			t.Fatalf("event %s decoded to a report of %s", ev.GetDigest(), rep.Artifact.Digest)
		}
		want, err := json.Marshal(rep)
		if err != nil {
			t.Fatalf("decoded report does not encode: %v", err)
		}
		if sj, _ := json.Marshal(signed.Report); !bytes.Equal(sj, want) {
			t.Fatalf("signed and unsigned decodes differ:\n%s\n%s", sj, want)
		}
		body, err := wire.EncodeReport(rep)
		if err != nil {
			t.Fatalf("EncodeReport: %v", err)
		}
		sum := sha256.Sum256(body)
		again, err := (&wire.Reader{}).Decode(ctx, subject, nil, fuzzEvent(t, &customsv1.ScanCompleted{
			Digest: rep.Artifact.Digest, Report: body, ReportEncoding: "gzip", ReportSha256: hex.EncodeToString(sum[:]),
		}))
		if err != nil {
			t.Fatalf("re-encoded report does not decode: %v", err)
		}
		if aj, _ := json.Marshal(again.Report); !bytes.Equal(aj, want) {
			t.Fatalf("round trip:\n%s\n%s", aj, want)
		}
	})
}

// FuzzDecodeTags: a TagsAdded body of any bytes is refused or read, never
// a panic; a signed event whose body was changed is refused.
func FuzzDecodeTags(f *testing.F) {
	good, err := proto.Marshal(&customsv1.TagsAdded{Registry: "r.test", Repository: "team/app",
		Digest: "sha256:" + strings.Repeat("ab", 32), Tags: []string{"v1"}, RequestedAt: timestamppb.Now()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("\x0a\xff\xff\xff\xff\x0f"))
	signer, err := wire.NewSigner(strings.Repeat("k", wire.MinKeyBytes))
	if err != nil {
		f.Fatal(err)
	}
	subject := wire.TagsSubject("sha256:" + strings.Repeat("ab", 32))
	sig := signer.Sign(subject, good)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := (&wire.Reader{}).DecodeTags(subject, nil, data)
		if err == nil && (ev.GetDigest() == "" || ev.GetRepository() == "") {
			t.Fatalf("accepted a tags event without digest or repository: %v", ev)
		}
		h := nats.Header{}
		h.Set(wire.SignatureHeader, sig)
		if _, err := (&wire.Reader{Signer: signer}).DecodeTags(subject, h, data); err == nil && !bytes.Equal(data, good) {
			t.Fatal("a changed body passed the signature")
		}
	})
}

// FuzzOpenSealed: sealed credentials come off NATS; whatever bytes a job
// carries, Open never panics, and what opens is what was sealed (the
// nonce is random per process, so fuzzing workers seal their own value:
// equality of bytes cannot be the check; seal_test alters bytes one by one).
func FuzzOpenSealed(f *testing.F) {
	key, err := wire.NewJobKey(strings.Repeat("k", 32))
	if err != nil {
		f.Fatal(err)
	}
	job := &customsv1.ScanJob{JobId: "r.test/team/app@sha256:" + strings.Repeat("ab", 32), EventId: "e1"}
	if err := key.Seal(job, "Basic cm9ib3Q6c2VjcmV0", time.Now().Add(time.Hour)); err != nil {
		f.Fatal(err)
	}
	good := append([]byte{}, job.GetSealedAuthorization()...)
	f.Add(good)
	f.Add([]byte{})
	f.Add(good[:len(good)-1])
	f.Fuzz(func(t *testing.T, sealed []byte) {
		j := &customsv1.ScanJob{JobId: job.GetJobId(), EventId: job.GetEventId(), SealedAuthorization: sealed}
		auth, err := key.Open(j, time.Now())
		if err == nil && auth != "Basic cm9ib3Q6c2VjcmV0" {
			t.Fatalf("altered sealed value opened: %q", auth)
		}
	})
}
