// Package vulndb builds a compact vulnerability database from OSV records
// (https://ossf.github.io/osv-schema/) and matches installed packages
// against it.
//
// Sources are directories searched recursively for *.json records, zip
// files such as the per-ecosystem all.zip dumps osv.dev publishes, or a
// URL serving such a zip. The database is an in-memory index keyed by
// ecosystem and package name, persisted as one gzip'd gob stream (see
// Write).
package vulndb

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/customs-scan/customs/pkg/report"
)

// FormatVersion is bumped whenever the on-disk layout or what a build keeps
// changes (2: RPM ranges, "related" ids as aliases; 3: advisories with
// summary, CVSS, references, dates and CWEs; 4: Go imports with their
// platforms and symbols, advisories' own severity); Read rejects other
// versions.
const FormatVersion = 4

// Entry is one affected package of one advisory, reduced to what matching
// needs. Events of each range are sorted by the ecosystem's ordering when
// the database is built.
type Entry struct {
	ID      string
	Aliases []string
	// Ecosystem is the normalized OSV ecosystem: base ("Debian") plus
	// release ("12") joined by ':'.
	Ecosystem string
	// Name is the normalized package name (for distributions: the source
	// package).
	Name     string
	Ranges   []Range
	Versions []string
	Severity string
	// CVSS is set when the affected entry carries its own CVSS vector
	// (rare); otherwise the advisory's applies.
	CVSS *report.CVSS `json:",omitempty"`
	// Imports are the packages the Go vulnerability database names as
	// vulnerable (ecosystem_specific.imports): the platform filter and
	// reachability read them. Empty for other ecosystems.
	Imports []Import `json:",omitempty"`
}

// Import is one vulnerable Go package of an advisory: GOOS and GOARCH
// restrict it to those platforms (empty: all), Symbols to those functions
// (empty: the whole package), named as Func or Type.Method.
type Import struct {
	Path    string
	GOOS    []string `json:",omitempty"`
	GOARCH  []string `json:",omitempty"`
	Symbols []string `json:",omitempty"`
}

// Advisory is what reports show about one OSV record beyond matching:
// kept once per id, shared by the entries of its affected packages.
type Advisory struct {
	ID string
	// Summary is the record's summary, else the first paragraph of its
	// details, on one line and bounded.
	Summary string
	// CVSS is the record's CVSS v3 (else v4) vector and base score.
	CVSS       *report.CVSS `json:",omitempty"`
	References []string
	// Severity is the record's own level (its CVSS vector, else its
	// database_specific rating), "" when it has none: Go advisories
	// borrow it from their aliases.
	Severity  string `json:",omitempty"`
	Published time.Time
	Modified  time.Time
	CWEs      []string
}

// Range is an OSV range of type ECOSYSTEM or SEMVER (GIT ranges are
// dropped at build time).
type Range struct {
	Type   string
	Events []Event
}

// Event is one OSV range event; exactly one field is set.
type Event struct {
	Introduced   string `json:",omitempty"`
	Fixed        string `json:",omitempty"`
	LastAffected string `json:",omitempty"`
}

// Header describes a database file.
type Header struct {
	Format int
	// ContentHash is the SHA-256 of the entries in their canonical order;
	// it does not depend on the build time, so two builds from the same
	// records have the same hash.
	ContentHash string
	Built       time.Time
	Entries     int
	Advisories  int
}

// Stats counts what a build saw.
type Stats struct {
	Records   int // OSV records read
	Withdrawn int // records skipped because withdrawn
	Invalid   int // records that did not decode or had no id
	Entries   int // affected entries kept
	Dropped   int // affected entries without a usable range or versions list
}

// DB is a built or loaded vulnerability database. It is safe for
// concurrent Match calls.
type DB struct {
	header     Header
	index      map[string][]*Entry // indexKey(base, name) → entries
	all        []*Entry            // canonical order
	advisories map[string]*Advisory
	advOrder   []*Advisory // by id
	// aliasedBy maps an id to the advisories that name it as an alias.
	aliasedBy map[string][]string
}

// Advisory returns what the database keeps about an advisory id (nil if
// none of its entries was kept).
func (db *DB) Advisory(id string) *Advisory { return db.advisories[id] }

// Header returns the database's header.
func (db *DB) Header() Header { return db.header }

// Version identifies the database content and build, e.g.
// "sha256:0a1b…@2026-01-02T03:04:05Z".
func (db *DB) Version() string {
	return db.header.ContentHash + "@" + db.header.Built.UTC().Format(time.RFC3339)
}

// Len is the number of affected entries.
func (db *DB) Len() int { return db.header.Entries }

func indexKey(base, name string) string { return base + "\x00" + name }

// Builder accumulates OSV records. When a record id is added twice the
// one with the later "modified" time is kept.
type Builder struct {
	records map[string]*osvRecord
	stats   Stats
	// Now returns the build time; nil means time.Now.
	Now func() time.Time
	// Progress, when set, is called as a downloaded source is read: bytes
	// so far and the total (-1 when the server did not say).
	Progress func(done, total int64)
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder { return &Builder{records: map[string]*osvRecord{}} }

// Stats returns the counts so far (Entries and Dropped after Build).
func (b *Builder) Stats() Stats { return b.stats }

// AddJSON adds one OSV record. Malformed records are counted as Invalid
// and skipped (real dumps occasionally carry oddities; one bad record must
// not block an update); withdrawn records are counted and skipped.
func (b *Builder) AddJSON(data []byte) {
	b.stats.Records++
	var rec osvRecord
	if err := json.Unmarshal(data, &rec); err != nil || rec.ID == "" {
		b.stats.Invalid++
		return
	}
	if rec.Withdrawn != nil && !rec.Withdrawn.IsZero() {
		b.stats.Withdrawn++
		// A withdrawal also removes an earlier copy of the record.
		if old, ok := b.records[rec.ID]; ok && !old.Modified.After(rec.Modified) {
			delete(b.records, rec.ID)
		}
		return
	}
	if old, ok := b.records[rec.ID]; ok && old.Modified.After(rec.Modified) {
		return
	}
	// Details can be long (kernel advisories): keep only what the
	// advisory will show.
	rec.Summary, rec.Details = summarize(rec.Summary, rec.Details), ""
	b.records[rec.ID] = &rec
}

// Build turns the records added so far into a database.
func (b *Builder) Build() *DB {
	var entries []*Entry
	var advisories []*Advisory
	b.stats.Entries, b.stats.Dropped = 0, 0
	for _, rec := range b.records {
		kept := len(entries)
		// Distribution records name their CVE in "upstream"
		// (DEBIAN-CVE-…, UBUNTU-CVE-…) or "related" (DSA-…, ALSA-…)
		// rather than "aliases"; report all so the CVE id is visible and
		// ignore rules written against CVE ids apply.
		aliases := append(append(append([]string{}, rec.Aliases...), rec.Upstream...), rec.Related...)
		sort.Strings(aliases)
		aliases = slices.Compact(aliases)
		for i := range rec.Affected {
			a := &rec.Affected[i]
			e := buildEntry(rec, a, aliases)
			if e == nil {
				b.stats.Dropped++
				continue
			}
			entries = append(entries, e)
		}
		if len(entries) > kept {
			advisories = append(advisories, advisoryOf(rec))
		}
	}
	b.stats.Entries = len(entries)
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	return newDB(entries, advisories, now().UTC().Truncate(time.Second))
}

func buildEntry(rec *osvRecord, a *osvAffected, aliases []string) *Entry {
	if a.Package.Name == "" || a.Package.Ecosystem == "" {
		return nil
	}
	base, release := normalizeEcosystem(a.Package.Ecosystem)
	eco := base
	if release != "" {
		eco += ":" + release
	}
	e := &Entry{
		ID:        rec.ID,
		Aliases:   aliases,
		Ecosystem: eco,
		Name:      normalizeName(base, a.Package.Name),
		Versions:  append([]string(nil), a.Versions...),
		Severity:  affectedSeverity(rec, a),
		CVSS:      cvssFromScores(a.Severity),
	}
	if base == ecoGo {
		e.Imports = goImports(a.EcosystemSpecific)
	}
	for _, r := range a.Ranges {
		if r.Type != "ECOSYSTEM" && r.Type != "SEMVER" {
			continue
		}
		cmp := comparatorFor(base, r.Type)
		if cmp == nil {
			continue
		}
		var evs []Event
		for _, ev := range r.Events {
			// Drop events whose version this ecosystem cannot parse:
			// they cannot be ordered against anything.
			switch {
			case ev.Introduced != "":
				if ev.Introduced == "0" || parses(cmp, ev.Introduced) {
					evs = append(evs, Event{Introduced: ev.Introduced})
				}
			case ev.Fixed != "":
				if parses(cmp, ev.Fixed) {
					evs = append(evs, Event{Fixed: ev.Fixed})
				}
			case ev.LastAffected != "":
				if parses(cmp, ev.LastAffected) {
					evs = append(evs, Event{LastAffected: ev.LastAffected})
				}
			}
		}
		if len(evs) == 0 {
			continue
		}
		sort.SliceStable(evs, func(i, j int) bool {
			vi, vj := evs[i].version(), evs[j].version()
			if vi == "0" && evs[i].Introduced != "" {
				return vj != "0" || evs[j].Introduced == ""
			}
			if vj == "0" && evs[j].Introduced != "" {
				return false
			}
			c, _ := cmp(vi, vj)
			return c < 0
		})
		e.Ranges = append(e.Ranges, Range{Type: r.Type, Events: evs})
	}
	if len(e.Ranges) == 0 && len(e.Versions) == 0 {
		return nil
	}
	return e
}

func parses(cmp comparator, v string) bool {
	_, err := cmp(v, v)
	return err == nil
}

func (ev Event) version() string {
	switch {
	case ev.Introduced != "":
		return ev.Introduced
	case ev.Fixed != "":
		return ev.Fixed
	}
	return ev.LastAffected
}

// newDB sorts entries and advisories canonically, hashes them and indexes
// them.
func newDB(entries []*Entry, advisories []*Advisory, built time.Time) *DB {
	type keyed struct {
		e   *Entry
		enc []byte
	}
	ks := make([]keyed, len(entries))
	for i, e := range entries {
		// Gob does not keep empty-versus-nil slices; make the hash agree.
		if len(e.Aliases) == 0 {
			e.Aliases = nil
		}
		if len(e.Versions) == 0 {
			e.Versions = nil
		}
		if len(e.Ranges) == 0 {
			e.Ranges = nil
		}
		if len(e.Imports) == 0 {
			e.Imports = nil
		}
		// JSON of a struct is deterministic.
		enc, _ := json.Marshal(e)
		ks[i] = keyed{e, enc}
	}
	sort.Slice(ks, func(i, j int) bool {
		a, b := ks[i].e, ks[j].e
		if a.Ecosystem != b.Ecosystem {
			return a.Ecosystem < b.Ecosystem
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return string(ks[i].enc) < string(ks[j].enc)
	})
	h := sha256.New()
	write := func(enc []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(enc)))
		h.Write(n[:])
		h.Write(enc)
	}
	ids := map[string]struct{}{}
	db := &DB{index: map[string][]*Entry{}, all: make([]*Entry, len(ks)), advisories: make(map[string]*Advisory, len(advisories)),
		aliasedBy: map[string][]string{}}
	for i, k := range ks {
		e := k.e
		db.all[i] = e
		write(k.enc)
		if _, seen := ids[e.ID]; !seen {
			for _, a := range e.Aliases {
				db.aliasedBy[a] = append(db.aliasedBy[a], e.ID)
			}
		}
		ids[e.ID] = struct{}{}
		base, _, _ := strings.Cut(e.Ecosystem, ":")
		key := indexKey(base, e.Name)
		db.index[key] = append(db.index[key], e)
	}
	// Advisories follow the entries in the hash, by id; gob does not keep
	// empty-versus-nil slices either.
	sort.Slice(advisories, func(i, j int) bool { return advisories[i].ID < advisories[j].ID })
	for _, a := range advisories {
		if len(a.References) == 0 {
			a.References = nil
		}
		if len(a.CWEs) == 0 {
			a.CWEs = nil
		}
		enc, _ := json.Marshal(a)
		write(enc)
		db.advisories[a.ID] = a
	}
	db.advOrder = advisories
	db.header = Header{
		Format:      FormatVersion,
		ContentHash: "sha256:" + hex.EncodeToString(h.Sum(nil)),
		Built:       built,
		Entries:     len(ks),
		Advisories:  len(ids),
	}
	return db
}

// Write stores the database as a gzip'd gob stream: the Header, then each
// Entry in canonical order, then each Advisory by id. Gob writes field names once per stream and
// values in a compact binary form, so the file is small and decodes
// several times faster than JSON; gzip removes the remaining repetition
// (ids, ecosystems, aliases). Streaming entries one by one keeps memory
// flat on both sides.
func (db *DB) Write(w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	enc := gob.NewEncoder(zw)
	if err := enc.Encode(db.header); err != nil {
		return fmt.Errorf("vulndb: write header: %w", err)
	}
	for _, e := range db.all {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("vulndb: write entry: %w", err)
		}
	}
	for _, a := range db.advOrder {
		if err := enc.Encode(a); err != nil {
			return fmt.Errorf("vulndb: write advisory: %w", err)
		}
	}
	return zw.Close()
}

// MaxDBBytes bounds the decompressed size Read accepts.
const MaxDBBytes = 4 << 30

// Read loads a database written by Write and checks its content hash.
func Read(r io.Reader) (*DB, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("vulndb: read: %w", err)
	}
	defer zr.Close()
	dec := gob.NewDecoder(io.LimitReader(zr, MaxDBBytes))
	var h Header
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("vulndb: read header: %w", err)
	}
	if h.Format != FormatVersion {
		return nil, fmt.Errorf("vulndb: database format %d, this Customs reads %d: rebuild it with `customs db update`", h.Format, FormatVersion)
	}
	if h.Entries < 0 || h.Advisories < 0 {
		return nil, fmt.Errorf("vulndb: corrupt header: %d entries, %d advisories", h.Entries, h.Advisories)
	}
	entries := make([]*Entry, 0, min(h.Entries, 1<<20))
	for len(entries) < h.Entries {
		e := new(Entry)
		if err := dec.Decode(e); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("vulndb: database truncated: %d of %d entries", len(entries), h.Entries)
			}
			return nil, fmt.Errorf("vulndb: read entry %d: %w", len(entries), err)
		}
		entries = append(entries, e)
	}
	advisories := make([]*Advisory, 0, min(h.Advisories, 1<<20))
	for {
		a := new(Advisory)
		if err := dec.Decode(a); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("vulndb: read advisory %d: %w", len(advisories), err)
		}
		advisories = append(advisories, a)
	}
	if len(advisories) != h.Advisories {
		return nil, fmt.Errorf("vulndb: database truncated: %d of %d advisories", len(advisories), h.Advisories)
	}
	db := newDB(entries, advisories, h.Built)
	if db.header.ContentHash != h.ContentHash {
		return nil, fmt.Errorf("vulndb: content hash mismatch: file says %s, content is %s", h.ContentHash, db.header.ContentHash)
	}
	return db, nil
}
