// Package osvfeed keeps local copies of OSV's per-ecosystem dumps
// (<mirror>/<ecosystem>/all.zip, as osv.dev publishes them) current and
// builds the vulnerability database from them.
//
// Each download is conditional (If-None-Match / If-Modified-Since with
// the ETag and Last-Modified of the copy kept), so an unchanged ecosystem
// costs one request. A download replaces the kept copy only once it
// reads as a zip: a corrupt or truncated answer leaves the previous copy
// and is reported. The copies and their validators live in one
// directory (Cache.Dir): <Dir>/<ecosystem>.zip and <Dir>/state.json.
//
//	c := osvfeed.Cache{Dir: dir, Mirror: osvfeed.DefaultMirror}
//	res, err := c.Update(ctx)             // res.Changed: some dump is new
//	db, st, err := c.Build(ctx, vulndb.Limits{})
package osvfeed

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/customs-scan/customs/pkg/vulndb"
)

// DefaultMirror is osv.dev's public bucket of per-ecosystem dumps.
const DefaultMirror = "https://osv-vulnerabilities.storage.googleapis.com"

// Cache is a directory of OSV dumps kept current from a mirror.
type Cache struct {
	// Dir holds the dumps and state.json.
	Dir string
	// Mirror is the base URL (DefaultMirror when empty).
	Mirror string
	// Ecosystems to fetch (vulndb.Ecosystems() when empty).
	Ecosystems []string
	// Client makes the requests (http.DefaultClient when nil).
	Client *http.Client
	// Limits bound each download (MaxDownloadBytes) and the build.
	Limits vulndb.Limits
	// Progress, when set, sees each download: bytes so far and the total
	// (-1 when the server did not say).
	Progress func(ecosystem string, done, total int64)
	// Now is the clock (tests).
	Now func() time.Time
}

// Outcomes of one ecosystem's update.
const (
	Downloaded  = "downloaded"
	NotModified = "not_modified"
	// Absent: the mirror has no dump of this ecosystem (404); a mirror of
	// an air-gapped site may carry only the ecosystems it needs.
	Absent = "absent"
	Failed = "failed"
)

// Fetch is what happened to one ecosystem.
type Fetch struct {
	Ecosystem string
	Outcome   string
	Bytes     int64
	Err       error
}

// Result of an Update.
type Result struct {
	Fetches []Fetch
	// Changed says the kept dumps differ from those the last Build that
	// was recorded (MarkBuilt) used: a new database is due.
	Changed bool
	// Sources fingerprints the dumps kept now (see MarkBuilt).
	Sources string
}

// Err joins the errors of the ecosystems that failed.
func (r Result) Err() error {
	var errs []error
	for _, f := range r.Fetches {
		if f.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Ecosystem, f.Err))
		}
	}
	return errors.Join(errs...)
}

// entry is what state.json keeps about one dump.
type entry struct {
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	SHA256       string    `json:"sha256"`
	Size         int64     `json:"size"`
	FetchedAt    time.Time `json:"fetched_at"`
	CheckedAt    time.Time `json:"checked_at"`
}

type state struct {
	Mirror     string            `json:"mirror"`
	Ecosystems map[string]*entry `json:"ecosystems"`
	// Built is the Sources fingerprint of the last recorded build.
	Built string `json:"built,omitempty"`
}

func (c *Cache) mirror() string {
	return strings.TrimRight(cmpOr(c.Mirror, DefaultMirror), "/")
}

func (c *Cache) ecosystems() []string {
	if len(c.Ecosystems) > 0 {
		return c.Ecosystems
	}
	return vulndb.Ecosystems()
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (c *Cache) statePath() string { return filepath.Join(c.Dir, "state.json") }

// zipPath is where an ecosystem's dump is kept ("Rocky Linux" →
// "Rocky Linux.zip": ecosystem names are plain words).
func (c *Cache) zipPath(eco string) string {
	return filepath.Join(c.Dir, strings.NewReplacer("/", "_", "\\", "_").Replace(eco)+".zip")
}

func (c *Cache) load() (*state, error) {
	st := &state{Ecosystems: map[string]*entry{}}
	data, err := os.ReadFile(c.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("osvfeed: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		// A damaged state only costs full downloads.
		return &state{Ecosystems: map[string]*entry{}}, nil
	}
	if st.Ecosystems == nil {
		st.Ecosystems = map[string]*entry{}
	}
	return st, nil
}

func (c *Cache) save(st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(c.statePath(), func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// Update fetches every ecosystem's dump that changed since it was kept.
// An ecosystem that fails keeps its previous copy; its error is in the
// result (Result.Err) and Update goes on with the others. The error
// returned is for what stops the whole update (the directory, ctx).
func (c *Cache) Update(ctx context.Context) (Result, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("osvfeed: %w", err)
	}
	st, err := c.load()
	if err != nil {
		return Result{}, err
	}
	if st.Mirror != c.mirror() {
		// Validators of another mirror mean nothing here.
		for _, e := range st.Ecosystems {
			e.ETag, e.LastModified = "", ""
		}
		st.Mirror = c.mirror()
	}
	var res Result
	for _, eco := range c.ecosystems() {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		f := c.fetch(ctx, eco, st)
		res.Fetches = append(res.Fetches, f)
		if err := c.save(st); err != nil {
			return res, err
		}
	}
	res.Sources = c.sources(st)
	res.Changed = res.Sources != st.Built
	return res, nil
}

func (c *Cache) fetch(ctx context.Context, eco string, st *state) Fetch {
	f := Fetch{Ecosystem: eco}
	u := c.mirror() + "/" + url.PathEscape(eco) + "/all.zip"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		f.Outcome, f.Err = Failed, err
		return f
	}
	prev := st.Ecosystems[eco]
	if prev != nil && fileExists(c.zipPath(eco)) {
		if prev.ETag != "" {
			req.Header.Set("If-None-Match", prev.ETag)
		}
		if prev.LastModified != "" {
			req.Header.Set("If-Modified-Since", prev.LastModified)
		}
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		f.Outcome, f.Err = Failed, fmt.Errorf("download: %w", err)
		return f
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && prev != nil:
		prev.CheckedAt = c.now().UTC()
		f.Outcome = NotModified
		return f
	case resp.StatusCode == http.StatusNotFound:
		f.Outcome = Absent
		return f
	case resp.StatusCode != http.StatusOK:
		f.Outcome, f.Err = Failed, fmt.Errorf("download %s: %s", u, resp.Status)
		return f
	}
	var body io.Reader = resp.Body
	if c.Progress != nil {
		body = &progress{r: resp.Body, total: resp.ContentLength, fn: func(done, total int64) { c.Progress(eco, done, total) }}
	}
	max := c.Limits.MaxDownloadBytes
	if max <= 0 {
		max = vulndb.DefaultLimits.MaxDownloadBytes
	}
	h := sha256.New()
	var n int64
	err = writeAtomic(c.zipPath(eco), func(tmp *os.File) error {
		n, err = io.Copy(io.MultiWriter(tmp, h), io.LimitReader(body, max+1))
		if err != nil {
			return fmt.Errorf("download: %w", err)
		}
		if n > max {
			return fmt.Errorf("dump larger than %d bytes", max)
		}
		// A truncated or corrupt answer must not replace a good copy.
		if _, err := zip.NewReader(tmp, n); err != nil {
			return fmt.Errorf("not a zip (corrupt or truncated download): %w", err)
		}
		return nil
	})
	if err != nil {
		f.Outcome, f.Err = Failed, err
		return f
	}
	now := c.now().UTC()
	st.Ecosystems[eco] = &entry{ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"),
		SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, FetchedAt: now, CheckedAt: now}
	f.Outcome, f.Bytes = Downloaded, n
	return f
}

// sources fingerprints the dumps kept: ecosystem and content hash of
// each, in order.
func (c *Cache) sources(st *state) string {
	var ecos []string
	for eco, e := range st.Ecosystems {
		if slices.Contains(c.ecosystems(), eco) && fileExists(c.zipPath(eco)) {
			ecos = append(ecos, eco+"="+e.SHA256)
		}
	}
	slices.Sort(ecos)
	sum := sha256.Sum256([]byte(strings.Join(ecos, "\n")))
	return hex.EncodeToString(sum[:])
}

// Build builds a database from every dump kept (none kept is an error).
func (c *Cache) Build(ctx context.Context, b *vulndb.Builder) (*vulndb.DB, error) {
	if b == nil {
		b = vulndb.NewBuilder()
	}
	n := 0
	for _, eco := range c.ecosystems() {
		p := c.zipPath(eco)
		if !fileExists(p) {
			continue
		}
		if err := b.AddZipFile(ctx, p, c.Limits); err != nil {
			// A copy that read as a zip but not as records is dropped, so
			// the next Update downloads it again instead of being told
			// "not modified" forever.
			if ctx.Err() == nil {
				c.forget(eco)
			}
			return nil, fmt.Errorf("osvfeed: %s: %w", eco, err)
		}
		n++
	}
	if n == 0 {
		return nil, errors.New("osvfeed: no OSV dump downloaded yet")
	}
	return b.Build(), nil
}

// MarkBuilt records that a database was built (and kept) from the dumps
// of sources (Result.Sources): the next Update says Changed only when a
// dump changes again.
func (c *Cache) MarkBuilt(sources string) error {
	st, err := c.load()
	if err != nil {
		return err
	}
	st.Built = sources
	return c.save(st)
}

func (c *Cache) forget(eco string) {
	_ = os.Remove(c.zipPath(eco))
	if st, err := c.load(); err == nil {
		delete(st.Ecosystems, eco)
		_ = c.save(st)
	}
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// writeAtomic writes path through a temporary file in its directory,
// renamed over it only when write succeeds.
func writeAtomic(path string, write func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".osvfeed-*")
	if err != nil {
		return fmt.Errorf("osvfeed: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("osvfeed: %w", err)
	}
	return nil
}

type progress struct {
	r           io.Reader
	done, total int64
	fn          func(done, total int64)
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if n > 0 || err == io.EOF {
		p.fn(p.done, p.total)
	}
	return n, err
}
