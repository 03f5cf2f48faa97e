package osvfeed_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/customs-scan/customs/pkg/osvfeed"
	"github.com/customs-scan/customs/pkg/osvfeed/osvfeedtest"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/vulndb"
)

func outcomes(r osvfeed.Result) string {
	var s []string
	for _, f := range r.Fetches {
		s = append(s, f.Ecosystem+":"+f.Outcome)
	}
	return strings.Join(s, " ")
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	m := osvfeedtest.New(t, map[string][]string{
		"Go":  {"osv/go/GO-2021-0113.json", "osv/go/GO-2022-1059.json"},
		"npm": {"osv/other/GHSA-35jh-r3h4-6jhm.json"},
	})
	c := &osvfeed.Cache{Dir: t.TempDir(), Mirror: m.URL + "/", Ecosystems: []string{"Go", "PyPI", "npm"}}
	res, err := c.Update(ctx)
	if err != nil || res.Err() != nil || !res.Changed {
		t.Fatalf("first update: %+v %v %v", res, err, res.Err())
	}
	if got := outcomes(res); got != "Go:downloaded PyPI:absent npm:downloaded" {
		t.Errorf("first update: %s", got)
	}
	db, err := c.Build(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(db.Match([]report.Package{{Name: "lodash", Version: "4.17.15", Ecosystem: "npm"}, {Name: "golang.org/x/text", Version: "0.3.6", Ecosystem: "Go"}})); n != 3 {
		t.Errorf("%d matches, want 3", n)
	}
	if err := c.MarkBuilt(res.Sources); err != nil {
		t.Fatal(err)
	}

	// Nothing changed upstream: conditional requests, no download, no
	// new database due.
	res, err = c.Update(ctx)
	if err != nil || res.Changed || outcomes(res) != "Go:not_modified PyPI:absent npm:not_modified" {
		t.Fatalf("second update: %s changed %v %v", outcomes(res), res.Changed, err)
	}
	if m.Downloads("Go") != 1 || m.Downloads("npm") != 1 {
		t.Errorf("downloads Go %d npm %d, want 1 each", m.Downloads("Go"), m.Downloads("npm"))
	}

	// One ecosystem changes: only it is downloaded.
	m.Set(t, "npm", "osv/other/GHSA-35jh-r3h4-6jhm.json", "osv/other/GHSA-p6mc-m468-83gw.json")
	res, err = c.Update(ctx)
	if err != nil || !res.Changed || outcomes(res) != "Go:not_modified PyPI:absent npm:downloaded" {
		t.Fatalf("third update: %s changed %v %v", outcomes(res), res.Changed, err)
	}
	if m.Downloads("Go") != 1 || m.Downloads("npm") != 2 {
		t.Errorf("downloads Go %d npm %d", m.Downloads("Go"), m.Downloads("npm"))
	}
	if err := c.MarkBuilt(res.Sources); err != nil {
		t.Fatal(err)
	}

	// A corrupt dump is reported and does not replace the kept copy.
	m.SetRaw("Go", []byte("PK\x03\x04 this is not a zip"))
	res, err = c.Update(ctx)
	if err != nil || res.Err() == nil || !strings.Contains(res.Err().Error(), "Go: not a zip") || res.Changed {
		t.Fatalf("corrupt: %s changed %v err %v / %v", outcomes(res), res.Changed, err, res.Err())
	}
	db, err = c.Build(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(db.Match([]report.Package{{Name: "golang.org/x/text", Version: "0.3.6", Ecosystem: "Go"}})); n != 2 {
		t.Errorf("after a corrupt download: %d Go matches, want the 2 kept", n)
	}
	// The next good dump replaces it (validators were not kept from the
	// corrupt answer).
	m.Set(t, "Go", "osv/go/GO-2021-0113.json")
	if res, err = c.Update(ctx); err != nil || res.Err() != nil || !res.Changed {
		t.Fatalf("recovery: %s %v %v", outcomes(res), err, res.Err())
	}
}

// The default list is every ecosystem Customs matches.
func TestDefaultEcosystems(t *testing.T) {
	got := strings.Join(vulndb.Ecosystems(), ",")
	for _, want := range []string{"Go", "npm", "PyPI", "Debian", "Alpine", "Ubuntu", "Red Hat", "crates.io"} {
		if !strings.Contains(got, want) {
			t.Errorf("%s missing from %s", want, got)
		}
	}
	m := osvfeedtest.New(t, map[string][]string{"Go": {"osv/go/GO-2021-0113.json"}})
	c := &osvfeed.Cache{Dir: t.TempDir(), Mirror: m.URL}
	res, err := c.Update(context.Background())
	if err != nil || res.Err() != nil || m.Requests() != len(vulndb.Ecosystems()) {
		t.Fatalf("%s: %v %v (%d requests)", outcomes(res), err, res.Err(), m.Requests())
	}
	if _, err := os.Stat(c.Dir + "/Red Hat.zip"); !os.IsNotExist(err) {
		t.Errorf("absent ecosystem kept a file: %v", err)
	}
}
