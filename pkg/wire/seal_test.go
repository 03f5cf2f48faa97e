package wire_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/wire"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

const jobKeySecret = "wire-test-job-key-0123456789abcdef0123"

func sealedJob(t *testing.T, k *wire.JobKey, auth string, expires time.Time) *customsv1.ScanJob {
	t.Helper()
	job := &customsv1.ScanJob{JobId: "harbor.test/library/app@sha256:" + string(bytes.Repeat([]byte("a"), 64)),
		EventId: "harbor-scan:1", Registry: "harbor.test", Repository: "library/app"}
	if err := k.Seal(job, auth, expires); err != nil {
		t.Fatal(err)
	}
	return job
}

// The value opens only with the same key, in the same job, before its
// expiry; the encoded job never holds it in clear.
func TestSealedAuthorization(t *testing.T) {
	k, err := wire.NewJobKey(jobKeySecret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	const auth = "Basic cm9ib3QkY3VzdG9tczpzM2NyM3Q6d2l0aDpjb2xvbnM="
	job := sealedJob(t, k, auth, now.Add(time.Hour))

	data, err := proto.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{auth, "cm9ib3QkY3VzdG9tczpzM2NyM3Q6d2l0aDpjb2xvbnM=", "s3cr3t"} {
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("encoded job contains %q", s)
		}
	}
	decoded := &customsv1.ScanJob{}
	if err := proto.Unmarshal(data, decoded); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(decoded, now); err != nil || got != auth {
		t.Fatalf("Open = %q, %v", got, err)
	}

	// Expired.
	if _, err := k.Open(decoded, now.Add(time.Hour+time.Second)); !errors.Is(err, wire.ErrSealedExpired) {
		t.Errorf("after expiry: %v", err)
	}
	// Another key.
	other, _ := wire.NewJobKey(jobKeySecret + "-other")
	if _, err := other.Open(decoded, now); !errors.Is(err, wire.ErrSealedOpen) {
		t.Errorf("other key: %v", err)
	}
	// Moved into another job (same image, another request; another image).
	for _, mutate := range []func(*customsv1.ScanJob){
		func(j *customsv1.ScanJob) { j.EventId = "harbor-scan:2" },
		func(j *customsv1.ScanJob) { j.JobId = "harbor.test/library/other@" + j.JobId[len(j.JobId)-71:] },
		func(j *customsv1.ScanJob) { j.SealedAuthorization[len(j.SealedAuthorization)-1] ^= 1 },
		func(j *customsv1.ScanJob) { j.SealedAuthorization = j.SealedAuthorization[:10] },
		func(j *customsv1.ScanJob) { j.SealedAuthorization = nil },
	} {
		j := proto.Clone(decoded).(*customsv1.ScanJob)
		mutate(j)
		if got, err := k.Open(j, now); !errors.Is(err, wire.ErrSealedOpen) || got != "" {
			t.Errorf("altered job opened: %q, %v", got, err)
		}
	}
	// Errors never carry the value.
	if _, err := other.Open(decoded, now); bytes.Contains([]byte(err.Error()), []byte("Basic")) {
		t.Errorf("error %q names the value", err)
	}
	// Two seals of one value differ (random nonce).
	again := sealedJob(t, k, auth, now.Add(time.Hour))
	if bytes.Equal(again.GetSealedAuthorization(), job.GetSealedAuthorization()) {
		t.Error("two seals are identical")
	}
	if _, err := wire.NewJobKey("short"); err == nil {
		t.Error("a short key was accepted")
	}
}
