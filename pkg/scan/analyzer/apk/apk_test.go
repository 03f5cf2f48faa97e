package apk_test

import (
	"testing"

	"github.com/customs-scan/customs/pkg/scan/analyzer/analyzertest"
	"github.com/customs-scan/customs/pkg/scan/analyzer/apk"
)

func TestCases(t *testing.T) {
	analyzertest.Run(t, apk.New(), "testdata")
}
