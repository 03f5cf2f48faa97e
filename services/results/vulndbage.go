package results

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/customs-scan/customs/pkg/vulndist"
)

// vulnDBAge is customs_vulndb_age_seconds: how old the database results
// matches against is, from its build time. With none published it is
// +Inf, so an alert on the age also fires when no database was ever
// published (reports then say "not checked").
func vulnDBAge(w *vulndist.Watcher) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "customs_vulndb_age_seconds",
		Help: "Age of the vulnerability database in use (now - its build time); +Inf while none is published.",
	}, func() float64 {
		db := w.Current()
		if db == nil {
			return math.Inf(1)
		}
		return time.Since(db.Header().Built).Seconds()
	})
}
