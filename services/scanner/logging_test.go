package scanner_test

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/queue/queuetest"
	"github.com/customs-scan/customs/pkg/scan/scantest"
	"github.com/customs-scan/customs/pkg/svcmain/svcmaintest"
	"github.com/customs-scan/customs/services/scanner"
)

// What pkg/scan logs through zerolog.Ctx reaches the operator with the
// job's fields (and the service named once).
func TestScanLibraryLogsCarryTheJob(t *testing.T) {
	var buf svcmaintest.LogBuffer
	ns := queuetest.Start(t)
	_, js := ns.Connect(t)
	if err := queue.EnsureStreams(t.Context(), js, queue.Topology{}); err != nil {
		t.Fatal(err)
	}
	e := startLogged(t, ns, js, scanner.Config{}, zerolog.New(&buf).Level(zerolog.DebugLevel))
	base := scantest.Layer(t, scantest.DebianRootfs(t)...)
	a := scantest.Image(t, base, scantest.Layer(t, scantest.Reg("srv/a", "a")))
	b := scantest.Image(t, base, scantest.Layer(t, scantest.Reg("srv/b", "b")))
	e.enqueue(t, "team/a", e.push(t, "team/a", a))
	queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 1)
	digestB := e.push(t, "team/b", b)
	e.enqueue(t, "team/b", digestB)
	queuetest.WaitMsgs(t, e.js, queue.ReportsStream, 2)

	var hit map[string]any
	for _, l := range buf.Lines() {
		if l["message"] == "scan: layer results from the cache" {
			hit = l
		}
	}
	if hit == nil {
		t.Fatal("the scan library's cache-hit line did not reach the log")
	}
	if hit["digest"] != digestB || hit["repository"] != "team/b" || hit["job_id"] == nil || hit["stream_seq"] == nil {
		t.Errorf("scan library log line lacks the job's fields: %v", hit)
	}
	if hit["service"] != "scanner" {
		t.Errorf("service field = %v", hit["service"])
	}
	if raw := buf.String(); strings.Contains(raw, `"service":"scanner","service"`) {
		t.Error("the service field is added more than once")
	}
}
