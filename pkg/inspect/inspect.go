// Package inspect turns an image or an image index into reports: it runs
// the scan library on each image and fills in what a report needs beyond
// the layer contents (artifact, scanner, times, verdict). The scanner
// service and `customs scan` both use it, so a report looks the same
// whichever way it was made.
//
// It is the facade that knows the analyzers: PackageAnalyzers is the one
// list of package analyzers, and NewEngine adds the threat analyzers an
// EngineConfig selects and builds the process's scan.Scanner. The scan
// engine (pkg/scan) imports no analyzer.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/customs-scan/customs/pkg/egress"
	"github.com/customs-scan/customs/pkg/policy"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/verdict"
	"github.com/customs-scan/customs/pkg/vulndb"
)

// ToolName names the tool that made a report: every report's
// scanner.name (with Version as scanner.version).
const ToolName = "customs"

// ErrUnsupported wraps artifacts Customs does not scan (e.g. a Helm chart,
// a schema-1 manifest). It also matches scan.ErrRejected: retrying cannot help.
var ErrUnsupported = fmt.Errorf("%w: unsupported artifact", scan.ErrRejected)

// Version is Customs' version: the module version when built from a
// tagged module, else the VCS revision, else "dev".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}

// Options tune a run.
type Options struct {
	// Scanner reads the images (Engine.Options sets it); required.
	Scanner *scan.Scanner
	// Rules decide the outcome once the image was read: policy, ignore
	// rules, the clock (pkg/verdict, which results uses alone).
	verdict.Rules
	// MaxPlatforms bounds how many manifests of one index are scanned.
	MaxPlatforms int
	// VulnDB returns the database to match packages against, read once
	// per image so a scan uses one version throughout; nil, or a nil
	// result, records that vulnerabilities were not checked.
	VulnDB func() *vulndb.DB
	// PackagesOff says package scanning was turned off: nothing to match.
	PackagesOff bool
	// MaxManifestBytes bounds each platform manifest of an index (the
	// caller checks the top-level one before reading it); 0: unbounded.
	MaxManifestBytes int64
	// JobMaxBytes and JobMaxFiles bound decompressed bytes and tar entries
	// across all platforms of an index together (≤ 0: unbounded).
	JobMaxBytes, JobMaxFiles int64
	// OnReport, when set, receives each platform's report of an index as
	// soon as it is done (published before the index's own report, so a
	// later failure cannot take finished platforms with it).
	OnReport func(ctx context.Context, r *report.Report) error
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now().UTC()
	}
	return time.Now().UTC()
}

// match applies o's database to a freshly scanned report.
func (o Options) match(r *report.Report) {
	if o.PackagesOff {
		r.VulnerabilityDB = report.VulnerabilityDB{Status: report.VulnDBNotChecked, Note: verdict.NotePackagesOff}
		return
	}
	var db *vulndb.DB
	if o.VulnDB != nil {
		db = o.VulnDB()
	}
	o.Rules.Match(r, db)
}

// Image scans one image and returns its report. art names it (its Digest is
// the manifest digest).
func Image(ctx context.Context, art report.Artifact, img v1.Image, opts Options) (*report.Report, error) {
	r := &report.Report{
		Artifact:  art,
		Scanner:   report.Scanner{Name: ToolName, Version: Version()},
		StartedAt: opts.now(),
	}
	if r.Artifact.MediaType == "" {
		if mt, err := img.MediaType(); err == nil {
			r.Artifact.MediaType = string(mt)
		}
	}
	if opts.Scanner == nil {
		return nil, errors.New("inspect: Options.Scanner is nil (see Engine.Options)")
	}
	res, err := opts.Scanner.Image(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", art.Digest, err)
	}
	r.OS = res.OS
	r.Layers = res.Layers
	r.Packages = res.Packages
	r.Findings = res.Findings
	if r.Artifact.Platform == "" {
		r.Artifact.Platform = res.Platform
	}
	r.Status = report.StatusComplete
	opts.match(r)
	r.FinishedAt = opts.now()
	r.Normalize()
	opts.Decide(r)
	return r, nil
}

// Index scans every platform image of idx. It returns one report per
// platform manifest, followed by the index's own report, which lists them.
func Index(ctx context.Context, art report.Artifact, idx v1.ImageIndex, opts Options) ([]*report.Report, error) {
	if opts.Scanner == nil {
		return nil, errors.New("inspect: Options.Scanner is nil (see Engine.Options)")
	}
	started := opts.now()
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", art.Digest, err)
	}
	limit := opts.MaxPlatforms
	if limit <= 0 {
		limit = 64
	}
	var children []v1.Descriptor
	for _, d := range im.Manifests {
		if isAttestation(d) || !d.MediaType.IsImage() {
			continue // build attestations and non-image artifacts have nothing to scan
		}
		children = append(children, d)
	}
	if len(children) > limit {
		return nil, fmt.Errorf("%w: index %s lists %d images, more than the limit of %d", scan.ErrLimitExceeded, art.Digest, len(children), limit)
	}
	if len(children) == 0 {
		return nil, fmt.Errorf("%w: index %s lists no container images", ErrUnsupported, art.Digest)
	}
	var reports []*report.Report
	idxReport := &report.Report{
		Artifact:  art,
		Scanner:   report.Scanner{Name: ToolName, Version: Version()},
		StartedAt: started,
		Status:    report.StatusComplete,
	}
	if idxReport.Artifact.MediaType == "" {
		idxReport.Artifact.MediaType = string(im.MediaType)
	}
	idxReport.Artifact.Platform = ""
	// One budget for the whole job: per-image limits alone would let every
	// platform spend a full image's worth.
	opts.Scanner = opts.Scanner.WithBudget(scan.NewBudget(opts.JobMaxBytes, opts.JobMaxFiles))
	for _, d := range children {
		childArt := report.Artifact{
			Registry:   art.Registry,
			Repository: art.Repository,
			Digest:     d.Digest.String(),
			Tags:       []string{},
			MediaType:  string(d.MediaType),
		}
		if d.Platform != nil {
			childArt.Platform = d.Platform.String()
		}
		r, err := indexChild(ctx, idx, d, childArt, opts)
		if err != nil {
			if !childFailure(err) {
				return nil, err // transient: the job is retried whole
			}
			// One bad platform must not hide the good ones: it gets a failed
			// report of its own, listed in the index's with the reason.
			r = Failed(childArt, opts.now(), egress.Sanitize(err).Error(), Rejected(err))
		}
		if opts.OnReport != nil {
			if err := opts.OnReport(ctx, r); err != nil {
				return nil, err
			}
		}
		reports = append(reports, r)
		ref := report.ManifestRef{Digest: r.Artifact.Digest, Platform: r.Artifact.Platform, Verdict: r.Verdict}
		if r.Status == report.StatusFailed {
			ref.Status, ref.Error = r.Status, r.Error
		}
		idxReport.Manifests = append(idxReport.Manifests, ref)
	}
	// The index itself has no packages: it records the database its
	// platforms were matched against.
	for _, r := range reports {
		if r.Status == report.StatusComplete {
			idxReport.VulnerabilityDB = r.VulnerabilityDB
			break
		}
	}
	idxReport.FinishedAt = opts.now()
	idxReport.Normalize()
	opts.Decide(idxReport)
	return append(reports, idxReport), nil
}

// indexChild scans one platform image of an index, refusing a child
// manifest over the manifest size limit before it is read.
func indexChild(ctx context.Context, idx v1.ImageIndex, d v1.Descriptor, art report.Artifact, opts Options) (*report.Report, error) {
	if limit := opts.MaxManifestBytes; limit > 0 && d.Size > limit {
		return nil, fmt.Errorf("%w: manifest %s is %d bytes, more than the limit of %d", scan.ErrLimitExceeded, d.Digest, d.Size, limit)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", d.Digest, err)
	}
	if limit := opts.MaxManifestBytes; limit > 0 {
		// The descriptor's size is the index's claim; check what came.
		if raw, err := img.RawManifest(); err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", d.Digest, err)
		} else if int64(len(raw)) > limit {
			return nil, fmt.Errorf("%w: manifest %s is %d bytes, more than the limit of %d", scan.ErrLimitExceeded, d.Digest, len(raw), limit)
		}
	}
	return Image(ctx, art, img, opts)
}

// childFailure says whether a platform's error is about that platform
// (rejected content, over a limit, missing from the registry, refused by
// the egress policy) rather than something a retry of the whole job could
// fix.
func childFailure(err error) bool {
	if Rejected(err) || egress.Refused(err) {
		return true
	}
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

func isAttestation(d v1.Descriptor) bool {
	return d.Annotations["vnd.docker.reference.type"] == "attestation-manifest"
}

// Failed builds the report recorded when a scan was given up: users find a
// reason instead of a missing report. An image rejected for its content
// (hostile paths, bombs, over limits) is suspicious and gets quarantine;
// any other failure (registry unreachable) gets warn.
func Failed(art report.Artifact, started time.Time, reason string, rejected bool) *report.Report {
	r := &report.Report{
		Artifact:   art,
		Scanner:    report.Scanner{Name: ToolName, Version: Version()},
		StartedAt:  started.UTC(),
		FinishedAt: time.Now().UTC(),
		Status:     report.StatusFailed,
		Error:      reason,
		Verdict:    report.VerdictWarn,
	}
	if rejected {
		r.Verdict = report.VerdictQuarantine
	}
	r.Normalize()
	policy.Default().Apply(r) // records the rule: default:scan-failed
	return r
}

// Rejected reports whether err is the image's fault (hostile, over limits,
// unsupported) rather than a transient failure.
func Rejected(err error) bool { return errors.Is(err, scan.ErrRejected) }
