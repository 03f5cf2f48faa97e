// Package clamav is an optional analyzer that streams suspicious files to
// a ClamAV daemon (clamd) with INSTREAM and reports its detections as
// malware findings.
//
// It is not in inspect.PackageAnalyzers: a service adds it when
// CUSTOMS_CLAMD_ADDR is set, e.g.
//
//	c, err := clamd.Dial(ctx, os.Getenv("CUSTOMS_CLAMD_ADDR"), clamd.WithMaxStreamBytes(max))
//	a := clamav.New(c, clamav.Options{})
//	res, err := scan.Image(ctx, img, scan.WithAnalyzers(append(inspect.PackageAnalyzers(), a)...))
//
// Suspicious files are executables (any x bit), scripts, archives and
// executable formats by extension, and every file under tmp/, var/tmp/
// and dev/shm/ — up to the client's stream limit (clamd's
// StreamMaxLength); larger files are not sent (the client counts them).
//
// Findings survive a later layer deleting the file (Persistent): the
// malware is still in the image anyone can pull.
//
// An unreachable clamd makes Analyze return an analyzer.FatalError
// wrapping clamd.ErrUnavailable: the scan fails and the job is retried,
// rather than an image being reported clean without having been scanned.
package clamav

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/customs-scan/customs/pkg/clamd"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// Name is the analyzer's name and the findings' Engine.
const Name = "clamav"

// Client is what the analyzer needs of a clamd client (*clamd.Client).
type Client interface {
	InStream(ctx context.Context, r io.Reader, size int64) (clamd.Result, error)
	MaxStreamBytes() int64
}

// Options configure the analyzer.
type Options struct {
	// MaxFileSize bounds the files sent; 0 means the client's
	// MaxStreamBytes (which also caps any larger value).
	MaxFileSize int64
	// Severity of findings; default CRITICAL.
	Severity string
}

// Analyzer sends suspicious files to clamd.
type Analyzer struct {
	c        Client
	max      int64
	severity string
}

var (
	_ analyzer.Analyzer   = (*Analyzer)(nil)
	_ analyzer.Persistent = (*Analyzer)(nil)
)

// New returns the analyzer using c.
func New(c Client, opts Options) *Analyzer {
	max := c.MaxStreamBytes()
	if opts.MaxFileSize > 0 && opts.MaxFileSize < max {
		max = opts.MaxFileSize
	}
	sev := opts.Severity
	if sev == "" {
		sev = report.SeverityCritical
	}
	return &Analyzer{c: c, max: max, severity: sev}
}

// Name implements analyzer.Analyzer.
func (*Analyzer) Name() string { return Name }

// Version implements analyzer.Analyzer. Detections also depend on
// clamd's database, which is why Fingerprint makes scans with this
// analyzer uncacheable.
func (*Analyzer) Version() int { return 1 }

// KeepsDeleted implements analyzer.Persistent.
func (*Analyzer) KeepsDeleted() bool { return true }

// Match implements analyzer.Analyzer: executables, files with a
// suspicious extension or under a staging directory, not empty and not
// larger than the stream limit. It does not allocate.
func (a *Analyzer) Match(path string, mode fs.FileMode, size int64) bool {
	if size <= 0 || size > a.max {
		return false
	}
	return analyzer.Suspicious(path, mode)
}

// Analyze implements analyzer.Analyzer: it streams f.Data to clamd.
func (a *Analyzer) Analyze(ctx context.Context, f *analyzer.File) (*analyzer.Result, error) {
	res, err := a.c.InStream(ctx, bytes.NewReader(f.Data), f.Size)
	if err != nil {
		err = fmt.Errorf("clamav: %s: %w", f.Path, err)
		if errors.Is(err, clamd.ErrUnavailable) {
			return nil, analyzer.Fatal(err) // fail the scan, retry the job
		}
		return nil, err
	}
	if !res.Found() {
		return nil, nil
	}
	sum := sha256.Sum256(f.Data)
	digest := hex.EncodeToString(sum[:])
	out := &analyzer.Result{}
	for _, sig := range res.Signatures {
		out.Findings = append(out.Findings, report.Finding{
			Kind:     report.KindMalware,
			Rule:     "clamav:" + sig,
			Severity: a.severity,
			Title:    "ClamAV: " + sig,
			SHA256:   digest,
			Engine:   Name,
		})
	}
	return out, nil
}
