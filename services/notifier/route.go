package notifier

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/customs-scan/customs/pkg/apiauth"
	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// Alert kinds (Alert.kind).
const (
	AlertPush       = "push"
	AlertRematch    = "rematch"
	AlertQuarantine = "quarantine"
	AlertRelease    = "release"
)

// isQuarantineNews: the alert is about a quarantine or release, or is a
// push whose verdict quarantined the image (one alert, quarantine set).
func isQuarantineNews(a *customsv1.Alert) bool {
	switch a.GetKind() {
	case AlertQuarantine, AlertRelease:
		return true
	}
	return a.GetQuarantine() != nil
}

// Plan says what each destination is sent about alert a: a copy of a whose
// new_items are those some route to that destination lets through (in
// a's order) and whose quarantine part is kept only when such a route
// takes quarantine news. A destination no route reaches is absent, so is
// one for which nothing is left: no message.
func (c *AlertsConfig) Plan(a *customsv1.Alert) map[string]*customsv1.Alert {
	type take struct {
		items      []bool
		quarantine bool
	}
	takes := map[string]*take{}
	for _, r := range c.Routes {
		if !r.matches(a) {
			continue
		}
		items, quarantine := r.filter(a)
		if !slices.Contains(items, true) && !quarantine {
			continue
		}
		for _, name := range r.Destinations {
			t := takes[name]
			if t == nil {
				t = &take{items: make([]bool, len(a.GetNewItems()))}
				takes[name] = t
			}
			for i, ok := range items {
				t.items[i] = t.items[i] || ok
			}
			t.quarantine = t.quarantine || quarantine
		}
	}
	out := make(map[string]*customsv1.Alert, len(takes))
	for name, t := range takes {
		b := proto.CloneOf(a)
		b.NewItems = nil
		for i, ok := range t.items {
			if ok {
				b.NewItems = append(b.NewItems, a.GetNewItems()[i])
			}
		}
		if !t.quarantine {
			b.Quarantine = nil
		}
		out[name] = b
	}
	return out
}

// matches: the route covers the alert's repository and verdict.
func (r Route) matches(a *customsv1.Alert) bool {
	if len(r.Verdicts) > 0 && !slices.Contains(r.Verdicts, a.GetVerdict()) {
		return false
	}
	if len(r.Repositories) == 0 {
		return true
	}
	return slices.ContainsFunc(r.Repositories, func(p string) bool { return apiauth.MatchRepository(p, a.GetRepository()) })
}

// filter says which of a's new items the route lets through, and whether
// it takes a's quarantine news. Quarantine and release alerts go only
// where quarantine news is wanted, whatever items they carry.
func (r Route) filter(a *customsv1.Alert) (items []bool, quarantine bool) {
	items = make([]bool, len(a.GetNewItems()))
	wants := func(kind string) bool { return len(r.Kinds) == 0 || slices.Contains(r.Kinds, kind) }
	quarantine = isQuarantineNews(a) && wants(KindQuarantine)
	if k := a.GetKind(); (k == AlertQuarantine || k == AlertRelease) && !quarantine {
		return items, false
	}
	for i, it := range a.GetNewItems() {
		if !wants(it.GetKind()) {
			continue
		}
		if it.GetKind() == KindVulnerability && r.MinSeverity != "" && severityRank(it.GetSeverity()) < severityRank(r.MinSeverity) {
			continue
		}
		items[i] = true
	}
	return items, quarantine
}
