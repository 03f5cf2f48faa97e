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
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/egress"
	"github.com/customs-scan/customs/pkg/inspect"
	"github.com/customs-scan/customs/pkg/layercache"
	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/services/customs/internal/dbcmd"
)

// Options for one scan.
type Options struct {
	Ref      string // image reference, when scanning from a registry
	Input    string // docker-save or OCI-layout tarball, instead of Ref
	Format   string // "json" (default) or "table"
	Insecure bool   // plain HTTP to the registry
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
}

// ErrUsage is wrapped by errors in how the command was called.
var ErrUsage = errors.New("usage")

// Run scans and writes the report(s) to out. For an index, JSON output is
// an array: every platform's report, then the index's.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	if (opts.Ref == "") == (opts.Input == "") {
		return fmt.Errorf("%w: give an image reference or --input, not both", ErrUsage)
	}
	if opts.Format == "" {
		opts.Format = "json"
	}
	if opts.Format != "json" && opts.Format != "table" {
		return fmt.Errorf("%w: --format must be json or table", ErrUsage)
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
	sopts := []scan.Option{scan.WithLimits(opts.Limits)}
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
	var reports []*report.Report
	if opts.Input != "" {
		reports, err = scanInput(ctx, opts.Input, iopts)
	} else {
		reports, err = scanRemote(ctx, opts, iopts)
	}
	if err != nil {
		return err
	}
	if opts.Format == "table" {
		return writeTable(out, reports)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if len(reports) == 1 {
		return enc.Encode(reports[0])
	}
	return enc.Encode(reports)
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

func writeTable(out io.Writer, reports []*report.Report) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		name := r.Artifact.Digest
		if r.Artifact.Repository != "" {
			name = r.Artifact.Repository + "@" + r.Artifact.Digest
		}
		fmt.Fprintf(tw, "%s\n", name)
		if r.Artifact.Platform != "" {
			fmt.Fprintf(tw, "platform:\t%s\n", r.Artifact.Platform)
		}
		if r.OS.ID != "" {
			fmt.Fprintf(tw, "os:\t%s %s\n", r.OS.ID, r.OS.Version)
		}
		fmt.Fprintf(tw, "verdict:\t%s\n", strings.ToUpper(r.Verdict))
		fmt.Fprintf(tw, "layers:\t%d\tpackages:\t%d\tvulnerabilities:\t%d\tfindings:\t%d\n",
			len(r.Layers), len(r.Packages), len(r.Vulnerabilities), len(r.Findings))
		if len(r.Manifests) > 0 {
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "PLATFORM\tDIGEST\tVERDICT")
			for _, m := range r.Manifests {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Platform, m.Digest, m.Verdict)
			}
		}
		if len(r.Packages) > 0 {
			pkgs := append([]report.Package{}, r.Packages...)
			sort.SliceStable(pkgs, func(a, b int) bool { return pkgs[a].Ecosystem+pkgs[a].Name < pkgs[b].Ecosystem+pkgs[b].Name })
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "PACKAGE\tVERSION\tECOSYSTEM\tPATH")
			for _, p := range pkgs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Version, p.Ecosystem, p.Path)
			}
		}
		switch r.VulnerabilityDB.Status {
		case report.VulnDBChecked:
			fmt.Fprintf(tw, "vulnerability db:\t%s\n", r.VulnerabilityDB.Version)
		default:
			if r.VulnerabilityDB.Note != "" {
				fmt.Fprintf(tw, "vulnerabilities:\tNOT CHECKED (%s)\n", r.VulnerabilityDB.Note)
			}
		}
		if len(r.Vulnerabilities) > 0 {
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "VULNERABILITY\tSEVERITY\tPACKAGE\tVERSION\tFIXED IN")
			for _, v := range r.Vulnerabilities {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.ID, v.Severity, v.Package, v.Version, v.FixedVersion)
			}
		}
		if len(r.IgnoredVulnerabilities) > 0 {
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "IGNORED\tSTATUS\tPACKAGE\tVERSION\tSOURCE")
			for _, v := range r.IgnoredVulnerabilities {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.ID, v.Status, v.Package, v.Version, v.Source)
			}
		}
		if len(r.Findings) > 0 {
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "KIND\tSEVERITY\tRULE\tPATH")
			for _, f := range r.Findings {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Kind, f.Severity, f.Rule, f.Path)
			}
		}
	}
	return tw.Flush()
}
