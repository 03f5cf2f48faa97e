package vulndist_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/vulndist"
)

// Ensure (the watchers' and the CLI's) binds to what exists and never
// reconfigures it: a bucket created by a service with its replica count
// keeps it even when the other bucket is missing or cannot be looked up.
func TestEnsureNeverReconfigures(t *testing.T) {
	srv := queuetest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	// Settings Ensure would not choose stand in for a cluster's replicas,
	// which a single server cannot show.
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: vulndist.KVBucket, History: 9, Description: "set by a service", Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := vulndist.Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, vulndist.KVBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != 9 {
		t.Errorf("history %d after Ensure, want 9: Ensure changed an existing bucket", st.History())
	}
	if _, err := js.ObjectStore(ctx, vulndist.ObjectBucket); err != nil {
		t.Errorf("the missing object store was not created: %v", err)
	}

	// A lookup that fails for another reason than "not found" (here an
	// expired context, in a cluster a leader election) creates nothing.
	expired, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := vulndist.Ensure(expired, js); err == nil {
		t.Error("Ensure succeeded without reaching the server")
	}
}
