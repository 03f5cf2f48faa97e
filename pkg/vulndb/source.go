package vulndb

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Limits bound what a source may make the builder read. The zero value
// means DefaultLimits.
type Limits struct {
	MaxRecordBytes   int64 // one OSV record (uncompressed)
	MaxTotalBytes    int64 // all records of one source (uncompressed)
	MaxRecords       int   // records (files or zip entries) of one source
	MaxDownloadBytes int64 // a zip fetched from a URL or read from a stream
}

// DefaultLimits fit the largest osv.dev dumps with room to spare (the
// biggest single records, kernel advisories with long versions lists, are
// a few MiB).
var DefaultLimits = Limits{
	MaxRecordBytes:   32 << 20,
	MaxTotalBytes:    16 << 30,
	MaxRecords:       4_000_000,
	MaxDownloadBytes: 4 << 30,
}

func (l Limits) orDefault() Limits {
	d := DefaultLimits
	if l.MaxRecordBytes > 0 {
		d.MaxRecordBytes = l.MaxRecordBytes
	}
	if l.MaxTotalBytes > 0 {
		d.MaxTotalBytes = l.MaxTotalBytes
	}
	if l.MaxRecords > 0 {
		d.MaxRecords = l.MaxRecords
	}
	if l.MaxDownloadBytes > 0 {
		d.MaxDownloadBytes = l.MaxDownloadBytes
	}
	return d
}

// Load builds a database from one or more sources (see Builder.AddSource).
func Load(ctx context.Context, sources ...string) (*DB, Stats, error) {
	b := NewBuilder()
	for _, s := range sources {
		if err := b.AddSource(ctx, s, Limits{}); err != nil {
			return nil, b.Stats(), err
		}
	}
	db := b.Build()
	return db, b.Stats(), nil
}

// AddSource adds the records of a source: an http(s) URL of a zip (such
// as https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip),
// a local .zip file, or a directory searched recursively for *.json.
func (b *Builder) AddSource(ctx context.Context, source string, lim Limits) error {
	if strings.HasPrefix(source, "https://") || strings.HasPrefix(source, "http://") {
		return b.AddURL(ctx, http.DefaultClient, source, lim)
	}
	fi, err := os.Stat(source)
	if err != nil {
		return fmt.Errorf("vulndb: source: %w", err)
	}
	if fi.IsDir() {
		return b.AddDir(ctx, source, lim)
	}
	return b.AddZipFile(ctx, source, lim)
}

// AddDir adds every *.json file under dir (recursively). Symlinks are not
// followed.
func (b *Builder) AddDir(ctx context.Context, dir string, lim Limits) error {
	lim = lim.orDefault()
	var n int
	var total int64
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(strings.ToLower(d.Name()), ".json") {
			return nil
		}
		if n++; n > lim.MaxRecords {
			return fmt.Errorf("vulndb: %s: more than %d records", dir, lim.MaxRecords)
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		data, err := readBounded(f, lim.MaxRecordBytes)
		f.Close()
		if err != nil {
			return fmt.Errorf("vulndb: %s: %w", path, err)
		}
		if total += int64(len(data)); total > lim.MaxTotalBytes {
			return fmt.Errorf("vulndb: %s: more than %d bytes of records", dir, lim.MaxTotalBytes)
		}
		b.AddJSON(data)
		return nil
	})
}

// AddZipFile adds the records of a zip file on disk.
func (b *Builder) AddZipFile(ctx context.Context, path string, lim Limits) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("vulndb: %s: %w", path, err)
	}
	defer zr.Close()
	return b.addZip(ctx, &zr.Reader, lim)
}

// AddZip adds the records of a zip read from r (spooled to a temporary
// file, at most MaxDownloadBytes).
func (b *Builder) AddZip(ctx context.Context, r io.Reader, lim Limits) error {
	lim = lim.orDefault()
	tmp, err := os.CreateTemp("", "customs-osv-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(r, lim.MaxDownloadBytes+1))
	if err != nil {
		return fmt.Errorf("vulndb: spool zip: %w", err)
	}
	if n > lim.MaxDownloadBytes {
		return fmt.Errorf("vulndb: zip larger than %d bytes", lim.MaxDownloadBytes)
	}
	zr, err := zip.NewReader(tmp, n)
	if err != nil {
		return fmt.Errorf("vulndb: zip: %w", err)
	}
	return b.addZip(ctx, zr, lim)
}

// AddURL downloads a zip and adds its records.
func (b *Builder) AddURL(ctx context.Context, client *http.Client, url string, lim Limits) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("vulndb: download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("vulndb: download %s: %s", url, resp.Status)
	}
	var body io.Reader = resp.Body
	if b.Progress != nil {
		body = &progressReader{r: resp.Body, total: resp.ContentLength, fn: b.Progress}
	}
	return b.AddZip(ctx, body, lim)
}

func (b *Builder) addZip(ctx context.Context, zr *zip.Reader, lim Limits) error {
	lim = lim.orDefault()
	if len(zr.File) > lim.MaxRecords {
		return fmt.Errorf("vulndb: zip has %d entries, more than %d", len(zr.File), lim.MaxRecords)
	}
	var total int64
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.FileInfo().IsDir() || !strings.HasSuffix(strings.ToLower(f.Name), ".json") {
			continue
		}
		if f.UncompressedSize64 > uint64(lim.MaxRecordBytes) {
			return fmt.Errorf("vulndb: zip entry %s: %d bytes, more than %d", f.Name, f.UncompressedSize64, lim.MaxRecordBytes)
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("vulndb: zip entry %s: %w", f.Name, err)
		}
		// The header's size is not trusted: readBounded enforces it.
		data, err := readBounded(rc, lim.MaxRecordBytes)
		rc.Close()
		if err != nil {
			return fmt.Errorf("vulndb: zip entry %s: %w", f.Name, err)
		}
		if total += int64(len(data)); total > lim.MaxTotalBytes {
			return fmt.Errorf("vulndb: zip: more than %d bytes of records", lim.MaxTotalBytes)
		}
		b.AddJSON(data)
	}
	return nil
}

func readBounded(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("record larger than %d bytes", max)
	}
	return data, nil
}
