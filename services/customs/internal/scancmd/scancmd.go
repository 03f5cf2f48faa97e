// Package scancmd implements `customs scan`: scan one image without any
// service and print its report.
package scancmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/egress"
	"github.com/customs-scan/customs/pkg/formats"
	"github.com/customs-scan/customs/pkg/formats/table"
	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/layercache"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/services/customs/internal/dbcmd"
)

// Options for one scan.
type Options struct {
	Ref    string // image reference, when scanning from a registry
	Input  string // docker-save or OCI-layout tarball, instead of Ref
	Format string // a formats name: json (default), table, cyclonedx, spdx-json, sarif, openvex
	// Packages lists the packages in the table.
	Packages bool
	// Color colours the table (the caller knows whether out is a terminal).
	Color bool
	// Platform selects one platform (os/arch[/variant]) of an index.
	Platform string
	// FailOn makes Run return an *ExitError after writing the output when
	// the verdict is at least this one (quarantine, warn) or any
	// vulnerability (not ignored) or finding is at least this severity.
	FailOn string
	// ExitCode is the code of that ExitError (1–255; 0 means 1).
	ExitCode int
	Insecure bool // plain HTTP to the registry
	Limits   scan.Limits
	Engine   inspect.EngineConfig
	Remote   []remote.Option
	// DBPath is the vulnerability database; empty: dbcmd.DefaultPath()
	// ($CUSTOMS_DB or the user cache dir), where a missing file means "not
	// checked" instead of an error.
	DBPath string
	// Stderr gets hints (nil: discarded).
	Stderr io.Writer
	// LayerCacheDir, when set, keeps per-layer results there: a later scan
	// of an image sharing layers analyzes only its new ones.
	LayerCacheDir string
	// RedirectHosts may be sent to by the registry (blob storage, a token
	// realm on another host); the registry named in Ref is the allowlist.
	RedirectHosts []string
	// TokenHosts are token realms trusted with the registry's credentials.
	TokenHosts []string
	// AllowForeignLayers fetches foreign-layer URLs (from allowed hosts).
	AllowForeignLayers bool
	// Memory and Streams size the scan's memory budget (scan.NewMemory;
	// 0: the defaults).
	Memory  int64
	Streams int
	// SetMemoryLimit sets the process's GOMEMLIMIT from the budget once
	// the engine and database are loaded (scan.SetMemoryLimit): for the
	// command, whose process is this one scan.
	SetMemoryLimit bool
}

// ErrUsage is wrapped by errors in how the command was called.
var ErrUsage = errors.New("usage")

// ExitError is returned by Run when --fail-on matched: the output was
// written and the command should exit with Code.
type ExitError struct {
	Code   int
	Reason string
}

func (e *ExitError) Error() string { return e.Reason }

// Run scans and writes the report(s) to out. For an index, JSON output is
// an array: every platform's report, then the index's.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	if (opts.Ref == "") == (opts.Input == "") {
		return fmt.Errorf("%w: give an image reference or --input, not both", ErrUsage)
	}
	if opts.Format == "" {
		opts.Format = formats.JSON
	}
	enc, _, ok := formats.Lookup(opts.Format)
	if !ok {
		return fmt.Errorf("%w: --format must be one of %s", ErrUsage, strings.Join(formats.Names(), ", "))
	}
	failOn, err := parseFailOn(opts.FailOn)
	if err != nil {
		return err
	}
	if opts.ExitCode < 0 || opts.ExitCode > 255 {
		return fmt.Errorf("%w: --exit-code must be from 1 to 255", ErrUsage)
	}
	if opts.Stderr != nil && zerolog.Ctx(ctx).GetLevel() == zerolog.Disabled {
		// The scan library's warnings (a file an analyzer could not read)
		// reach the person running the command, with the image named.
		ref := opts.Ref
		if ref == "" {
			ref = opts.Input
		}
		ctx = zerolog.New(zerolog.ConsoleWriter{Out: opts.Stderr}).Level(zerolog.WarnLevel).
			With().Str("image", ref).Logger().WithContext(ctx)
	}
	mem, err := scan.NewMemory(opts.Memory, opts.Streams)
	if err != nil {
		return fmt.Errorf("%w: --memory: %w", ErrUsage, err)
	}
	sopts := []scan.Option{scan.WithLimits(opts.Limits), scan.WithMemory(mem)}
	if opts.LayerCacheDir != "" {
		sopts = append(sopts, scan.WithLayerCache(layercache.Dir(opts.LayerCacheDir)))
	}
	engine, err := inspect.NewEngine(opts.Engine, sopts...)
	if err != nil {
		return err
	}
	defer engine.Close()
	if opts.LayerCacheDir != "" {
		if err := os.MkdirAll(opts.LayerCacheDir, 0o755); err != nil {
			return fmt.Errorf("layer cache: %w", err)
		}
	}
	iopts := engine.Options()
	// An index is one job: its platforms share one image's budget, as in
	// the scanner service by default.
	if lim := opts.Limits; lim.MaxUncompressedBytes > 0 || lim.MaxFiles > 0 {
		iopts.JobMaxBytes, iopts.JobMaxFiles = lim.MaxUncompressedBytes, lim.MaxFiles
	}
	db, err := openDB(opts)
	if err != nil {
		return err
	}
	iopts.VulnDB = func() *vulndb.DB { return db }
	if opts.SetMemoryLimit {
		scan.SetMemoryLimit(mem, 32<<20)
	}
	var reports []*report.Report
	if opts.Input != "" {
		reports, err = scanInput(ctx, opts.Input, iopts)
	} else {
		reports, err = scanRemote(ctx, opts, iopts)
	}
	if err != nil {
		return err
	}
	if reports, err = selectReports(reports, opts); err != nil {
		return err
	}
	fopts := formats.Options{Packages: opts.Packages, Color: opts.Color}
	switch {
	case len(reports) == 1:
		err = enc(out, reports[0], fopts)
	case opts.Format == formats.Table:
		err = table.EncodeAll(out, reports, table.Options{Packages: opts.Packages, Color: opts.Color})
	default: // JSON: every platform's report, then the index's
		e := json.NewEncoder(out)
		e.SetIndent("", "  ")
		err = e.Encode(reports)
	}
	if err != nil {
		return err
	}
	if reason := failOn.match(reports); reason != "" {
		code := opts.ExitCode
		if code == 0 {
			code = 1
		}
		return &ExitError{Code: code, Reason: reason}
	}
	return nil
}

// selectReports keeps what the format writes: --platform's report of an
// index, else everything for json and table; the other formats describe
// one image, so an index needs --platform unless it has one platform.
func selectReports(reports []*report.Report, opts Options) ([]*report.Report, error) {
	if len(reports) <= 1 {
		return reports, nil
	}
	var platforms []*report.Report
	var names []string
	for _, r := range reports {
		if len(r.Manifests) == 0 {
			platforms = append(platforms, r)
			names = append(names, r.Artifact.Platform)
		}
	}
	if opts.Platform != "" {
		for _, r := range platforms {
			if r.Artifact.Platform == opts.Platform {
				return []*report.Report{r}, nil
			}
		}
		return nil, fmt.Errorf("%w: --platform %s: the index has %s", ErrUsage, opts.Platform, strings.Join(names, ", "))
	}
	if opts.Format == formats.JSON || opts.Format == formats.Table {
		return reports, nil
	}
	if len(platforms) == 1 {
		return platforms, nil
	}
	return nil, fmt.Errorf("%w: --format %s describes one image and this is an index: choose one with --platform (%s)", ErrUsage, opts.Format, strings.Join(names, ", "))
}

// failOn is a --fail-on threshold: a verdict or a severity.
type failOn struct {
	verdict  int    // verdictRank of the threshold, -1: none
	severity string // a report severity, "": none
}

func verdictRank(v string) int {
	switch v {
	case report.VerdictWarn:
		return 1
	case report.VerdictQuarantine:
		return 2
	}
	return 0
}

func severityRank(s string) int {
	return slices.Index([]string{report.SeverityUnknown, report.SeverityLow, report.SeverityMedium, report.SeverityHigh, report.SeverityCritical}, s)
}

func parseFailOn(s string) (failOn, error) {
	f := failOn{verdict: -1}
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "":
	case report.VerdictWarn, report.VerdictQuarantine:
		f.verdict = verdictRank(v)
	default:
		f.severity = strings.ToUpper(v)
		if severityRank(f.severity) < 0 {
			return f, fmt.Errorf("%w: --fail-on must be quarantine, warn or a severity (critical, high, medium, low, unknown), not %q", ErrUsage, s)
		}
	}
	return f, nil
}

// match says why the reports fail the threshold ("" when they don't).
func (f failOn) match(reports []*report.Report) string {
	for _, r := range reports {
		if f.verdict >= 0 && r.Verdict != "" && verdictRank(r.Verdict) >= f.verdict {
			return fmt.Sprintf("verdict %s of %s is at or above --fail-on", r.Verdict, nameOf(r))
		}
		if f.severity == "" {
			continue
		}
		threshold := severityRank(f.severity)
		var hits []string
		for _, v := range r.Vulnerabilities {
			if severityRank(v.Severity) >= threshold {
				hits = append(hits, v.ID+" ("+v.Severity+")")
			}
		}
		for _, fd := range r.Findings {
			if severityRank(fd.Severity) >= threshold {
				hits = append(hits, fd.Kind+" "+fd.Rule+" ("+fd.Severity+")")
			}
		}
		if len(hits) > 0 {
			more := ""
			if len(hits) > 5 {
				more = fmt.Sprintf(" and %d more", len(hits)-5)
				hits = hits[:5]
			}
			return fmt.Sprintf("%s: %s%s at or above --fail-on %s", nameOf(r), strings.Join(hits, ", "), more, f.severity)
		}
	}
	return ""
}

func nameOf(r *report.Report) string {
	name := r.Artifact.Digest
	if r.Artifact.Repository != "" {
		name = r.Artifact.Repository + "@" + name
	}
	if r.Artifact.Platform != "" {
		name += " (" + r.Artifact.Platform + ")"
	}
	return name
}

func openDB(opts Options) (*vulndb.DB, error) {
	if opts.Engine.Detectors != nil && !slices.Contains(opts.Engine.Detectors, inspect.DetectorPackages) {
		return nil, nil
	}
	if opts.DBPath != "" {
		return vulndb.OpenFile(opts.DBPath)
	}
	path, err := dbcmd.DefaultPath()
	if err != nil {
		return nil, err
	}
	db, err := vulndb.OpenOptional(path)
	if err == nil && db == nil && opts.Stderr != nil {
		fmt.Fprintf(opts.Stderr, "customs: no vulnerability database at %s: packages are listed but not checked (run `customs db update --source ...`)\n", path)
	}
	return db, err
}

func scanRemote(ctx context.Context, opts Options, iopts inspect.Options) ([]*report.Report, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(opts.Ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: image reference: %w", ErrUsage, err)
	}
	// The registry the user named is the allowlist: realms, redirects and
	// foreign layers follow the scanner's rules.
	registry := ref.Context().RegistryStr()
	allow := egress.WithRegistries(registry)
	if opts.Insecure {
		allow = egress.WithInsecureRegistries(registry)
	}
	policy := egress.NewPolicy(allow, egress.WithRedirectHosts(opts.RedirectHosts...), egress.WithTokenHosts(opts.TokenHosts...), egress.WithForeignLayers(opts.AllowForeignLayers))
	tr := egress.NewTransport(policy, nil)
	defer tr.CloseIdleConnections()
	rt, err := tr.For(registry)
	if err != nil {
		return nil, err
	}
	ropts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts.Remote...)
	ropts = append(ropts, remote.WithTransport(rt))
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", ref, egress.Sanitize(err))
	}
	art := report.Artifact{
		Registry:   ref.Context().RegistryStr(),
		Repository: ref.Context().RepositoryStr(),
		Digest:     desc.Digest.String(),
		Tags:       []string{},
		MediaType:  string(desc.MediaType),
	}
	if t, ok := ref.(name.Tag); ok {
		art.Tags = []string{t.TagStr()}
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, egress.Sanitize(err)
		}
		reports, err := inspect.Index(ctx, art, policy.Index(idx, ref.Context(), ropts...), iopts)
		return reports, egress.Sanitize(err)
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, egress.Sanitize(err)
		}
		r, err := inspect.Image(ctx, art, policy.Image(img, ref.Context(), ropts...), iopts)
		if err != nil {
			return nil, egress.Sanitize(err)
		}
		return []*report.Report{r}, nil
	}
	return nil, fmt.Errorf("%w: %s has media type %s", inspect.ErrUnsupported, ref, desc.MediaType)
}

func scanInput(ctx context.Context, file string, iopts inspect.Options) ([]*report.Report, error) {
	img, idx, repoTag, closeFn, err := openTarInput(file)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	art := report.Artifact{Tags: []string{}}
	if repoTag != "" {
		if t, err := name.NewTag(repoTag); err == nil {
			art.Registry = t.RegistryStr()
			art.Repository = t.RepositoryStr()
			art.Tags = []string{t.TagStr()}
		}
	}
	if idx != nil {
		d, err := idx.Digest()
		if err != nil {
			return nil, err
		}
		art.Digest = d.String()
		return inspect.Index(ctx, art, idx, iopts)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image digest: %w", err)
	}
	art.Digest = d.String()
	r, err := inspect.Image(ctx, art, img, iopts)
	if err != nil {
		return nil, err
	}
	return []*report.Report{r}, nil
}
