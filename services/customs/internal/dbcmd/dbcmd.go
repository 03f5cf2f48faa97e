// Package dbcmd implements `customs db`: build the vulnerability database
// from OSV sources (by default osv.dev's per-ecosystem dumps, kept
// current with conditional requests), show it, and publish it to a
// running Customs.
package dbcmd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/osvfeed"
	"github.com/customs-scan/customs/pkg/vulndb"
	"github.com/customs-scan/customs/pkg/vulndist"
)

// UpdateOptions for `customs db update`.
type UpdateOptions struct {
	// Sources are OSV zips (URL or file) or directories. None: the
	// per-ecosystem dumps of Mirror, for every ecosystem Customs matches.
	Sources []string
	// Mirror is the base URL of the dumps (<Mirror>/<ecosystem>/all.zip);
	// empty: $CUSTOMS_OSV_MIRROR, else osv.dev's (osvfeed.DefaultMirror).
	Mirror string
	// Path is the database file (default: DefaultPath()).
	Path string
	// PublishURL, when set, publishes the built database to the NATS
	// server of a running Customs.
	PublishURL string
	// Progress forces (true) or suppresses (false) download progress; nil
	// shows it when stderr is a terminal.
	Progress *bool
}

// EnvMirror names the environment variable with the base URL of the OSV
// dumps `customs db update` fetches without --source.
const EnvMirror = "CUSTOMS_OSV_MIRROR"

// CacheDir is where the dumps behind the database at dbPath are kept:
// beside it, so that each database has its own validators.
func CacheDir(dbPath string) string {
	return filepath.Join(filepath.Dir(dbPath), "osv-dumps")
}

// Update builds the database from the sources (or the mirror's dumps)
// and writes it.
func Update(ctx context.Context, opts UpdateOptions, stdout, stderr io.Writer) error {
	path, err := resolvePath(opts.Path)
	if err != nil {
		return err
	}
	show := isTerminal(stderr)
	if opts.Progress != nil {
		show = *opts.Progress
	}
	if len(opts.Sources) == 0 {
		return updateFromMirror(ctx, opts, path, show, stdout, stderr)
	}
	b := vulndb.NewBuilder()
	start := time.Now()
	for _, src := range opts.Sources {
		fmt.Fprintf(stderr, "reading %s\n", src)
		if show {
			b.Progress = progressPrinter(stderr)
		}
		err := b.AddSource(ctx, src, vulndb.Limits{})
		if show {
			fmt.Fprintln(stderr)
		}
		if err != nil {
			return fmt.Errorf("source %s: %w", src, err)
		}
	}
	db := b.Build()
	st := b.Stats()
	if st.Entries == 0 {
		return fmt.Errorf("the sources held no usable OSV records (%d read, %d invalid, %d withdrawn): database not written", st.Records, st.Invalid, st.Withdrawn)
	}
	if err := write(db, st, path, start, stdout); err != nil {
		return err
	}
	if opts.PublishURL != "" {
		return publish(ctx, opts.PublishURL, db, stdout)
	}
	return nil
}

func write(db *vulndb.DB, st vulndb.Stats, path string, start time.Time, stdout io.Writer) error {
	if err := db.WriteFile(path); err != nil {
		return err
	}
	fi, _ := os.Stat(path)
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	fmt.Fprintf(stdout, "wrote %s\n  version:    %s\n  advisories: %d (%d package entries; %d records read, %d withdrawn, %d invalid, %d entries without a usable range)\n  size:       %d bytes, built in %s\n",
		path, db.Version(), db.Header().Advisories, st.Entries, st.Records, st.Withdrawn, st.Invalid, st.Dropped, size, time.Since(start).Round(time.Millisecond))
	return nil
}

// updateFromMirror refreshes the kept dumps and rebuilds the database
// when one changed (or the database is missing or unreadable). Any
// ecosystem that fails leaves the database as it was and is reported.
func updateFromMirror(ctx context.Context, opts UpdateOptions, path string, show bool, stdout, stderr io.Writer) error {
	start := time.Now()
	mirror := cmp.Or(opts.Mirror, os.Getenv(EnvMirror), osvfeed.DefaultMirror)
	c := &osvfeed.Cache{Dir: CacheDir(path), Mirror: mirror}
	fmt.Fprintf(stderr, "checking %d ecosystems at %s\n", len(vulndb.Ecosystems()), mirror)
	if show {
		var last string
		print := progressPrinter(stderr)
		c.Progress = func(eco string, done, total int64) {
			if eco != last {
				if last != "" {
					fmt.Fprintln(stderr)
				}
				fmt.Fprintf(stderr, "%s\n", eco)
				last = eco
			}
			print(done, total)
		}
		defer func() {
			if last != "" {
				fmt.Fprintln(stderr)
			}
		}()
	}
	res, err := c.Update(ctx)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, f := range res.Fetches {
		counts[f.Outcome]++
	}
	fmt.Fprintf(stdout, "%s: %d downloaded, %d unchanged, %d not on the mirror, %d failed\n", mirror,
		counts[osvfeed.Downloaded], counts[osvfeed.NotModified], counts[osvfeed.Absent], counts[osvfeed.Failed])
	if err := res.Err(); err != nil {
		return fmt.Errorf("%w\nthe database was not changed: %s", err, path)
	}
	if !res.Changed {
		if db, err := vulndb.OpenFile(path); err == nil {
			fmt.Fprintf(stdout, "up to date: %s (%s)\n", path, db.Version())
			if opts.PublishURL != "" {
				return publish(ctx, opts.PublishURL, db, stdout)
			}
			return nil
		}
	}
	b := vulndb.NewBuilder()
	db, err := c.Build(ctx, b)
	if err != nil {
		return fmt.Errorf("%w\nthe database was not changed: %s", err, path)
	}
	st := b.Stats()
	if st.Entries == 0 {
		return fmt.Errorf("the dumps held no usable OSV records (%d read, %d invalid, %d withdrawn): database not written", st.Records, st.Invalid, st.Withdrawn)
	}
	if err := write(db, st, path, start, stdout); err != nil {
		return err
	}
	if err := c.MarkBuilt(res.Sources); err != nil {
		return err
	}
	if opts.PublishURL != "" {
		return publish(ctx, opts.PublishURL, db, stdout)
	}
	return nil
}

// Publish sends the database file to a running Customs' NATS.
func Publish(ctx context.Context, path, natsURL string, stdout io.Writer) error {
	path, err := resolvePath(path)
	if err != nil {
		return err
	}
	db, err := vulndb.OpenFile(path)
	if err != nil {
		return err
	}
	return publish(ctx, natsURL, db, stdout)
}

func publish(ctx context.Context, natsURL string, db *vulndb.DB, stdout io.Writer) error {
	nc, js, err := natsconn.Connect(ctx, natsconn.Config{URL: natsURL}, "customs-db", zerolog.Nop())
	if err != nil {
		return err
	}
	defer nc.Close()
	p, changed, err := vulndist.Publish(ctx, js, db)
	if errors.Is(err, vulndist.ErrStale) {
		fmt.Fprintf(stdout, "not published: %v\n", err)
		return nil
	}
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(stdout, "already current on %s: %s\n", natsconn.Redact(natsURL), p.Version)
		return nil
	}
	fmt.Fprintf(stdout, "published %s to %s: scanners swap to it, stored reports are re-matched\n", p.Version, natsconn.Redact(natsURL))
	return nil
}

// Info prints what a database file holds.
func Info(path string, stdout io.Writer) error {
	path, err := resolvePath(path)
	if err != nil {
		return err
	}
	db, err := vulndb.OpenFile(path)
	if err != nil {
		return err
	}
	h := db.Header()
	fmt.Fprintf(stdout, "%s\n  version:    %s\n  built:      %s\n  advisories: %d (%d package entries)\n",
		path, db.Version(), h.Built.Format(time.RFC3339), h.Advisories, h.Entries)
	return nil
}

// EnvPath names the environment variable that chooses the database file
// of every customs command when --db is not given.
const EnvPath = "CUSTOMS_DB"

// DefaultPath is where `customs db update` writes the database and where
// `customs scan` and `customs up` look for it without --db: $CUSTOMS_DB,
// else <user cache dir>/customs/vulndb.gob.gz (vulndb.DefaultPath). The
// commands read the environment here; the libraries take the path.
func DefaultPath() (string, error) {
	if p := os.Getenv(EnvPath); p != "" {
		return p, nil
	}
	p, err := vulndb.DefaultPath()
	if err != nil {
		return "", fmt.Errorf("%w (set %s)", err, EnvPath)
	}
	return p, nil
}

func resolvePath(p string) (string, error) {
	if p != "" {
		return p, nil
	}
	return DefaultPath()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// progressPrinter rewrites one line with the bytes downloaded, at most
// every 100 ms.
func progressPrinter(w io.Writer) func(done, total int64) {
	var last time.Time
	return func(done, total int64) {
		if now := time.Now(); now.Sub(last) < 100*time.Millisecond && done != total {
			return
		} else {
			last = now
		}
		if total > 0 {
			fmt.Fprintf(w, "\r  %6.1f / %.1f MiB (%3.0f%%)", mib(done), mib(total), 100*float64(done)/float64(total))
		} else {
			fmt.Fprintf(w, "\r  %6.1f MiB", mib(done))
		}
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
