// Package analyzer defines what an analyzer is: the small interface that
// the scan package's layer walker drives, and the types it exchanges with
// analyzers. Each analyzer lives in its own package under
// pkg/scan/analyzer/<name> and imports this package, pkg/report and, when
// it adapts a detection engine, that engine's package (pkg/secrets,
// pkg/yara, pkg/archive, pkg/clamd: APIs over bytes that know nothing of
// analyzers); package inspect lists them in PackageAnalyzers. There is no
// global registry and no init-time registration.
//
// # Life of a file
//
// For every regular file of every layer the walker calls Match (which must
// be cheap: it runs for millions of files). Hardlinks, symlinks, devices
// and whiteouts are never given to analyzers: a symlink is resolved, for
// analyzers implementing Anchored only, to the regular file a program in
// the container would open (see Anchored). When at least one analyzer
// matches and the file is not larger than Limits.MaxAnalyzedFileSize, the
// walker reads the first SniffLen bytes; analyzers that implement Sniffer
// may still decline the file. The rest of the file is then read into
// memory once and handed to each remaining analyzer's Analyze.
//
// The walker — not the analyzer — decides which results survive:
// results of files deleted (whiteouts) or replaced by a later layer are
// dropped, and each package is attributed to the layer that added it.
// Finally, analyzers implementing PostProcessor see their surviving
// results together with image-wide facts (the OS), e.g. to fill the OSV
// ecosystem and the purl of distribution packages.
package analyzer

import (
	"bytes"
	"context"
	"io"
	"io/fs"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/customs-scan/customs/pkg/report"
)

// SniffLen is how many leading bytes of a file Sniffer.Sniff is given
// (fewer when the file is shorter).
const SniffLen = 512

// Analyzer finds packages and findings in files.
//
// Implementations must be safe for concurrent use: layers are walked in
// parallel and share one Analyzer value. They must be robust against
// hostile content: a malformed file yields what could be parsed (or
// nothing) and a nil error; Analyze must never panic (the walker recovers
// panics anyway, and drops that file's result).
type Analyzer interface {
	// Name is unique among the analyzers of one scan, e.g. "dpkg". It is
	// written into report.Package.Analyzer.
	Name() string
	// Version changes whenever the analyzer's output for the same input
	// may change: the per-layer result cache keys on it (configuration
	// that changes the output goes into Fingerprinter instead).
	Version() int
	// Match reports whether the analyzer wants the regular file at path.
	// path is cleaned, relative to the image root, without a leading
	// slash ("var/lib/dpkg/status"); mode carries the permission bits;
	// size is the file's size in bytes. Match is called for every regular
	// file of every layer: keep it to a few comparisons and never
	// allocate.
	Match(path string, mode fs.FileMode, size int64) bool
	// Analyze reads f and returns what it found (nil when nothing).
	// Returning an error does not fail the scan: the file's result is
	// dropped and the error logged (a context error does stop the scan).
	Analyze(ctx context.Context, f *File) (*Result, error)
}

// Sniffer is an optional Analyzer interface: a cheap second look at the
// first bytes of a matched file before the whole file is read into memory
// (e.g. executable magic numbers).
type Sniffer interface {
	// Sniff is given path and the first min(size, SniffLen) bytes of the
	// file; it returns false to skip the file. head must not be retained.
	Sniff(path string, head []byte) bool
}

// PostProcessor is an optional Analyzer interface, run once per scan after
// all layers were walked, whiteouts applied and packages attributed.
type PostProcessor interface {
	// PostProcess may edit res in place: it holds this analyzer's
	// surviving packages and findings (Layer and Path already set).
	// Typical use: set Ecosystem and PURL from img.OS. Packages may also
	// be removed or added; the walker sorts them afterwards.
	PostProcess(ctx context.Context, img *Image, res *Result) error
}

// Anchored is an optional Analyzer interface for analyzers that read files
// at fixed places, the way a program in the container opens them by name:
// package databases (/var/lib/dpkg/status, /lib/apk/db/installed, the rpm
// database) and os-release. For them the scan resolves symlinks within the
// image root as a container runtime would, in the image's final
// filesystem: a database that is itself a symlink (var/lib/dpkg/status →
// ../../../opt/x/status), an anchor directory that is one (var/lib/dpkg →
// /opt/x), or a file written through a symlinked directory (opt/d →
// /var/lib/dpkg, then opt/d/status) is analyzed under the name the
// analyzer wants, with the content the runtime would read. Analyzers that
// recognise their files anywhere (language packages, binaries, secrets)
// see every regular file where it lies and need no resolution.
type Anchored interface {
	// Anchors returns the directories (cleaned, relative to the root, as
	// Match's paths) whose direct children Match may accept; Match must
	// accept no other path. Called once per scan.
	Anchors() []string
}

// MemoryUser is an optional Analyzer interface for analyzers whose
// parsing of a file allocates copies of it (TOML and line parsers that
// work on strings). ParseCopies(path) says how many times the file's size
// the analyzer may allocate on top of the buffer it is given; the scan
// counts size × (1 + copies) against its memory budget and does not give
// the analyzer a file that would not fit, so a planted 250 MiB lockfile
// cannot multiply a worker's memory.
type MemoryUser interface {
	ParseCopies(path string) int
}

// ConfigAnalyzer is an optional Analyzer interface for analyzers that also
// (or only) read the image config: environment, labels, user, exposed
// ports, history. It runs once per scan, before the layers are merged;
// its findings carry whatever Layer the analyzer sets (e.g. the layer a
// history entry created), empty for the image as a whole. An analyzer that
// only reads the config returns false from Match.
type ConfigAnalyzer interface {
	AnalyzeConfig(ctx context.Context, img *Image, cfg *v1.ConfigFile) (*Result, error)
}

// Redactor is an optional Analyzer interface for analyzers that know
// what a secret looks like: RedactText returns text with every secret it
// finds reduced to its redacted form. The scan passes each layer's build
// step (history created_by) through every Redactor before it goes into
// the report, so Layer.CreatedBy never carries a credential the findings
// only show redacted.
type Redactor interface {
	RedactText(text string) string
}

// Persistent is an optional Analyzer interface: findings of an analyzer
// that returns true survive when a later layer deletes or replaces the
// file. A secret or a miner added in one layer and deleted in the next is
// still in the image anyone can pull. Packages are never persistent.
type Persistent interface {
	KeepsDeleted() bool
}

// Fingerprinter is an optional Analyzer interface for analyzers whose
// output depends on their configuration as well as on their code (rule
// files, hash lists, size limits): the per-layer result cache keys on
// Name, Version and Fingerprint together, so a configuration change never
// serves results computed under another one.
type Fingerprinter interface {
	// Fingerprint identifies everything besides the code that changes the
	// analyzer's per-file output (a hash of the rules' text, say). It is
	// called once per scan, must be cheap and must not block: compute it
	// in the constructor. Return Uncacheable when the output depends on
	// state the analyzer cannot name (a remote engine's database).
	Fingerprint() string
}

// Uncacheable is the Fingerprint of an analyzer whose output cannot be
// reused across scans: while it takes part in a scan, no layer of that
// scan is read from or written to the layer cache.
const Uncacheable = "\x00uncacheable"

// FatalError marks an Analyze error that must fail the whole scan instead
// of skipping the file: an external engine that cannot answer (clamd
// unreachable) would otherwise yield a clean-looking report. The scan's
// error is not a rejection, so the job is retried.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Fatal wraps err in a FatalError.
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	return &FatalError{Err: err}
}

// File is one regular file handed to Analyze.
type File struct {
	// Path is cleaned and relative to the image root ("etc/os-release").
	Path string
	// Mode holds the type and permission bits from the tar header.
	Mode fs.FileMode
	// Size is the file size; len(Data) == Size unless Window is set.
	Size int64
	// Data is the whole content (one window of it when Window is set). It
	// is only valid during Analyze (the buffer is reused): copy what you
	// keep — string(b) copies.
	Data []byte
	// Window says Data is one window of a file too large to hold whole
	// (see Windowed): windows overlap by WindowOverlap bytes, so a match
	// shorter than that is seen whole in some window.
	Window bool
	// Offset is where Data starts in the file (0 unless Window is set),
	// and Line the number of newlines before it: a window's line n is the
	// file's line Line+n.
	Offset int64
	Line   int
	// Head, when Window is set, is the file's first bytes (up to
	// HeadLen), for every window: what a format's headers say about the
	// rest of the file (an ELF file's program headers say which windows
	// are machine code).
	Head []byte
	// At, when set, holds the whole content and Data is nil: a large file
	// served from disk to an analyzer that reads it only through ReaderAt
	// (see ReaderAtUser).
	At io.ReaderAt
	// Memory, when set, is the scan's memory budget: give it to
	// pkg/archive (Limits.Memory) so that buffers of archives opened
	// inside the file are charged too. Never blocks.
	Memory Memory
}

// Memory is the scan's memory budget as archive.Memory sees it.
type Memory interface {
	Reserve(n int64) bool
	Unreserve(n int64)
}

// HeadLen is how many of a windowed file's first bytes File.Head holds.
const HeadLen = 4 << 10

// WindowOverlap is how many bytes consecutive windows of a file share.
const WindowOverlap = 64 << 10

// Windowed is an optional Analyzer interface for analyzers that can judge
// a file window by window (signature matching): a file over the size
// they buffer (their own Match limit, or the scan's MaxAnalyzedFileSize)
// would otherwise go unread, and padding a miner past the limit would
// hide it. MatchLarge is Match for such files; Analyze then gets
// overlapping windows (File.Window set) and its findings are merged.
type Windowed interface {
	MatchLarge(path string, mode fs.FileMode, size int64) bool
}

// WindowExact is an optional interface of a Windowed analyzer whose
// findings in windows are exact: each match is reported by one window
// only (the one that holds it whole: a match starting in the last
// WindowOverlap bytes of a window that is not the file's last belongs to
// the next window) and carries the file's line number (File.Line). The
// walker then keeps all of them; for other Windowed analyzers it keeps
// one finding per rule, the first window's, without a line past the
// first window.
type WindowExact interface {
	ExactWindows() bool
}

// ReaderAt returns the whole content as an io.ReaderAt: At when set, else
// Data.
func (f *File) ReaderAt() io.ReaderAt {
	if f.At != nil {
		return f.At
	}
	return bytes.NewReader(f.Data)
}

// ReaderAtUser is an optional Analyzer interface for analyzers that, on
// some files, read only through File.ReaderAt and never File.Data: ReadsAt
// says so for the file path whose first bytes (up to SniffLen) are head.
// When every analyzer that wants a large file says so, the scan writes the
// file to a temporary file as it streams and gives them File.At instead
// of holding the file in memory: an executable's size then costs disk,
// not the memory budget.
type ReaderAtUser interface {
	ReadsAt(path string, head []byte) bool
}

// Result is what an analyzer found in one file (or, for PostProcess, in
// the whole image).
type Result struct {
	Packages []report.Package
	Findings []report.Finding
	// OS, when set, describes the distribution the file belongs to. When
	// several surviving files report an OS, the highest OSPriority wins
	// (then the highest layer, then the smallest path).
	OS         *report.OS
	OSPriority int
}

// Empty reports whether r carries nothing.
func (r *Result) Empty() bool {
	return r == nil || (len(r.Packages) == 0 && len(r.Findings) == 0 && r.OS == nil)
}

// Image carries image-wide facts for PostProcess.
type Image struct {
	// OS is the distribution found in the image (zero when none).
	OS report.OS
	// Platform is "os/arch[/variant]" from the config, "" when unknown.
	Platform string
	// Layers are the image's layers, bottom first.
	Layers []report.Layer
	// History is the config's history; entries with EmptyLayer false
	// correspond, in order, to Layers.
	History []v1.History
}

// Normalize sets what the walker owns in a file's result: every package's
// and finding's Analyzer name, and Path when the analyzer left it empty.
// The walker calls it after Analyze; analyzer tests use it to get the same
// output the walker produces.
func Normalize(a Analyzer, path string, r *Result) {
	if r == nil {
		return
	}
	name := a.Name()
	for i := range r.Packages {
		p := &r.Packages[i]
		p.Analyzer = name
		if p.Path == "" {
			p.Path = path
		}
	}
	for i := range r.Findings {
		if r.Findings[i].Path == "" {
			r.Findings[i].Path = path
		}
	}
}
