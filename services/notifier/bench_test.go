package notifier_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/customs-scan/customs/services/notifier"
)

// BenchmarkDelivery measures alerts/s through one notifier to one local
// webhook receiver (signed JSON), end to end: publish to JetStream,
// consume, dedupe lookup, render, sign, POST, record, ack.
//
//	go test -run '^$' -bench Delivery -benchtime 2000x ./services/notifier
func BenchmarkDelivery(b *testing.B) {
	r := newReceiver(b, func(int) answer { return answer{Status: http.StatusOK} })
	h := startNotifier(b, "destinations:\n"+destinationYAML("siem", "webhook", r.URL(), "secret: "+testSecret, "rate_per_second: 100000")+
		"routes:\n  - destinations: [siem]\n", notifier.Config{})
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		a := newAlert(fmt.Sprintf("bench-%d-%d", b.N, i), "payments/api", vuln("CVE-2026-1", "HIGH", "openssl"), vuln("CVE-2026-2", "CRITICAL", "zlib"))
		h.publish(b, a, a.GetId())
	}
	r.waitAccepted(b, b.N, 5*time.Minute)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "alerts/s")
}
