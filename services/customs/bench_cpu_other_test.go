//go:build !unix

package customs_test

import "time"

// benchCPU is not measured here: images/cpu-min is left out.
type benchCPU struct{}

func (c *benchCPU) read() {}

func (c benchCPU) sub(benchCPU) time.Duration { return 0 }
