package proto_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// TestScanJobRoundTrip is a sanity check that the generated code compiles and
// that every ScanJob field survives a marshal/unmarshal round trip.
func TestScanJobRoundTrip(t *testing.T) {
	in := &customsv1.ScanJob{
		JobId:       "job-0123456789abcdef",
		Source:      "distribution",
		Registry:    "registry.example.com:5000",
		Repository:  "library/nginx",
		Digest:      "sha256:0000000000000000000000000000000000000000000000000000000000000001",
		Tags:        []string{"latest", "1.27"},
		MediaType:   "application/vnd.oci.image.index.v1+json",
		Insecure:    true,
		RequestedAt: timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)),
		EventId:     "evt-42",
		// Opaque to proto: sealed by pkg/wire.
		SealedAuthorization: []byte{0x01, 0xde, 0xad},
	}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	out := &customsv1.ScanJob{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if !proto.Equal(in, out) {
		t.Fatalf("round trip mismatch:\n in: %v\nout: %v", in, out)
	}

	// Every field must be set, so a field silently dropped from the schema
	// (or stale generated code) shows up here.
	fields := in.ProtoReflect().Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		if fd := fields.Get(i); !out.ProtoReflect().Has(fd) {
			t.Errorf("field %s not set after round trip", fd.Name())
		}
	}
}
