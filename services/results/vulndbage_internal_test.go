package results

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/vulndist"
)

// No database published: the age is +Inf, so "older than N days" fires.
func TestVulnDBAgeWithoutDatabase(t *testing.T) {
	g := vulnDBAge(vulndist.NewWatcher(nil, nil, zerolog.Nop()))
	if v := testutil.ToFloat64(g); !math.IsInf(v, 1) {
		t.Errorf("age without a database = %v, want +Inf", v)
	}
}
