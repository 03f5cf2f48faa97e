// Package formats is the registry of the formats Customs writes a report
// in: its own JSON (the v1 contract), a table for people, and the
// standard exports, one package each: cyclonedx (CycloneDX 1.6 SBOM and
// VEX), spdx (SPDX 2.3 SBOM), sarif (SARIF 2.1.0 for code scanning) and
// openvex (OpenVEX statements of what was ignored). Every export is
// derived from a stored report; none needs the image again.
//
//	enc, contentType, ok := formats.Lookup("cyclonedx")
//	err := enc(w, r, formats.Options{})
//
// `customs scan --format` and GET /v1/reports/{digest}?format= (or Accept)
// use it.
package formats

import (
	"encoding/json"
	"io"
	"mime"
	"strconv"
	"strings"

	"github.com/customs-scan/customs/pkg/formats/cyclonedx"
	"github.com/customs-scan/customs/pkg/formats/openvex"
	"github.com/customs-scan/customs/pkg/formats/sarif"
	"github.com/customs-scan/customs/pkg/formats/spdx"
	"github.com/customs-scan/customs/pkg/formats/table"
	"github.com/customs-scan/customs/pkg/report"
)

// Format names, as --format and ?format= take them.
const (
	JSON      = "json"
	Table     = "table"
	CycloneDX = "cyclonedx"
	SPDXJSON  = "spdx-json"
	SARIF     = "sarif"
	OpenVEX   = "openvex"
)

// JSONContentType is the media type of Customs' own report JSON.
const JSONContentType = "application/json"

// Options tune the formats that have choices (the table); the others
// ignore them.
type Options struct {
	// Packages lists the packages (table).
	Packages bool
	// Color uses ANSI colours (table): only when writing to a terminal.
	Color bool
}

// Encoder writes one report in one format.
type Encoder func(w io.Writer, r *report.Report, opts Options) error

type format struct {
	name        string
	contentType string
	// accept are other media types Accept may name it by.
	accept []string
	enc    Encoder
}

func registry() []format {
	return []format{
		{JSON, JSONContentType, nil, func(w io.Writer, r *report.Report, _ Options) error { return EncodeJSON(w, r) }},
		{Table, table.ContentType, nil, func(w io.Writer, r *report.Report, o Options) error {
			return table.Encode(w, r, table.Options{Packages: o.Packages, Color: o.Color})
		}},
		{CycloneDX, cyclonedx.ContentType, nil, func(w io.Writer, r *report.Report, _ Options) error { return cyclonedx.Encode(w, r) }},
		{SPDXJSON, spdx.ContentType, nil, func(w io.Writer, r *report.Report, _ Options) error { return spdx.Encode(w, r) }},
		{SARIF, sarif.ContentType, nil, func(w io.Writer, r *report.Report, _ Options) error { return sarif.Encode(w, r) }},
		// OpenVEX has no registered media type; both spellings are in use.
		{OpenVEX, openvex.ContentType, []string{"application/openvex+json"}, func(w io.Writer, r *report.Report, _ Options) error { return openvex.Encode(w, r) }},
	}
}

// Lookup returns the encoder of a format name and the content type of
// what it writes.
func Lookup(name string) (enc Encoder, contentType string, ok bool) {
	for _, f := range registry() {
		if f.name == name {
			return f.enc, f.contentType, true
		}
	}
	return nil, "", false
}

// Names lists the format names.
func Names() []string {
	var out []string
	for _, f := range registry() {
		out = append(out, f.name)
	}
	return out
}

// EncodeJSON writes Customs' own report JSON (indented, as customs scan
// prints it).
func EncodeJSON(w io.Writer, r *report.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// FromAccept chooses a format from an HTTP Accept header: the
// acceptable media range with the highest q (the more specific on a tie,
// then the first). An empty header, */* and application/* mean JSON,
// text/* the table. ok is false when the header names only media types
// Customs does not write (406).
func FromAccept(header string) (name string, ok bool) {
	if strings.TrimSpace(header) == "" {
		return JSON, true
	}
	best, bestQ, bestSpec := "", -1.0, -1
	for _, part := range strings.Split(header, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(s, 64); err != nil {
				continue
			}
		}
		if q <= 0 {
			continue
		}
		name, spec := match(mt)
		if name == "" {
			continue
		}
		if q > bestQ || q == bestQ && spec > bestSpec {
			best, bestQ, bestSpec = name, q, spec
		}
	}
	return best, best != ""
}

// match returns the format a media range selects and how specific the
// range is (2 exact, 1 type/*, 0 */*).
func match(mt string) (string, int) {
	switch mt {
	case "*/*", "application/*":
		spec := 0
		if mt == "application/*" {
			spec = 1
		}
		return JSON, spec
	case "text/*":
		return Table, 1
	}
	for _, f := range registry() {
		base, _, _ := mime.ParseMediaType(f.contentType)
		if mt == base {
			return f.name, 2
		}
		for _, a := range f.accept {
			if mt == a {
				return f.name, 2
			}
		}
	}
	return "", 0
}
