//go:build unix

package customs_test

import (
	"syscall"
	"time"
)

// benchCPU is this process's user+system CPU time.
type benchCPU struct{ d time.Duration }

func (c *benchCPU) read() {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.d = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
}

func (c benchCPU) sub(o benchCPU) time.Duration { return c.d - o.d }
