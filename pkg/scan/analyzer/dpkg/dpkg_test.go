package dpkg_test

import (
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/dpkg"
)

func TestCases(t *testing.T) {
	analyzertest.Run(t, dpkg.New(), "testdata")
}
