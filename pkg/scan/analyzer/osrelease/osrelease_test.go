package osrelease_test

import (
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/osrelease"
)

func TestCases(t *testing.T) {
	analyzertest.Run(t, osrelease.New(), "testdata")
}
