package customs_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// A hostile image hiding behind 1,500 planted credentials must still be
// quarantined: the report reaches results (bounded, each rule listed with
// how many more it matched) instead of failing to publish and reading
// failed / warn / 0 findings.
func TestThousandsOfPlantedSecretsKeepTheVerdict(t *testing.T) {
	st := startStack(t, testConfig(t))
	var files []scantest.File
	for i := range 1500 {
		keyID, secret := randomAWSKey(t)
		files = append(files, scantest.Reg(fmt.Sprintf("app/conf/%04d.env", i),
			"AWS_ACCESS_KEY_ID="+keyID+"\nAWS_SECRET_ACCESS_KEY="+secret+"\n"))
	}
	img := scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...), scantest.Layer(t, files...))
	digest := push(t, st, "testbed/planted:latest", img)
	r := waitReport(t, st.ResultsURL, digest)

	if r.Status != report.StatusComplete || r.Verdict != report.VerdictQuarantine {
		t.Fatalf("status %s verdict %s (%s): the verdict did not survive the report's size", r.Status, r.Verdict, r.Error)
	}
	if r.FindingsOmitted < 1000 {
		t.Errorf("findings_omitted = %d, want the ~1,400+ planted ones beyond the cap", r.FindingsOmitted)
	}
	if len(r.Findings) > 500 {
		t.Errorf("%d findings listed: not capped", len(r.Findings))
	}
	var more bool
	for _, f := range r.Findings {
		if f.Kind == report.KindSecret && strings.Contains(f.Title, "more") && f.Path == "(omitted)" {
			more = true
		}
	}
	if !more {
		t.Errorf("no '… and N more' entry among %d findings", len(r.Findings))
	}
}
