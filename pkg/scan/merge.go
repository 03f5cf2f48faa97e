package scan

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"path"
	"slices"

	"github.com/customs-scan/customs/pkg/report"
	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

// pathHashes are the hashes of a path and of its ancestors.
type pathHashes struct {
	self      uint64
	ancestors []uint64 // proper ancestors, nearest first, root excluded
	root      uint64
}

func (s *imageScan) pathHashes(p string) pathHashes {
	h := pathHashes{self: maphash.String(s.seed, p), root: maphash.String(s.seed, ".")}
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		h.ancestors = append(h.ancestors, maphash.String(s.seed, d))
	}
	return h
}

// hides reports whether layer l hides a lower layer's file at p: a
// whiteout of p or of an ancestor, an opaque ancestor, a non-directory
// entry at an ancestor (a directory replaced by a file or link) and, when
// exact is set, any entry at p itself (p replaced).
func (l *layerOut) hides(p *pathHashes, exact bool) bool {
	if exact && (l.hasEntry(p.self, false) || l.hasEntry(p.self, true)) {
		return true
	}
	if _, ok := l.whiteouts[p.self]; ok {
		return true
	}
	if _, ok := l.opaques[p.root]; ok {
		return true
	}
	for _, a := range p.ancestors {
		if _, ok := l.whiteouts[a]; ok {
			return true
		}
		if _, ok := l.opaques[a]; ok {
			return true
		}
		if l.hasEntry(a, false) {
			return true
		}
	}
	return false
}

func (l *layerOut) hasEntry(h uint64, dir bool) bool {
	k := h << 1
	if dir {
		k |= 1
	}
	_, ok := slices.BinarySearch(l.entries, k)
	return ok
}

type pkgKey struct{ name, version, arch string }

type osCandidate struct {
	os       report.OS
	priority int
	layer    int
	path     string
}

// merge applies whiteouts and replacements bottom-up, attributes packages
// to the layer that added them, picks the OS, runs post-processors and
// sorts.
func (s *imageScan) merge(ctx context.Context, res *Result, outs []*layerOut) error {
	perAnalyzer := make([]analyzer.Result, len(s.o.analyzers))
	var best *osCandidate

	osCand := func(r *analyzer.Result, layer int, p string) {
		if r.OS != nil {
			c := osCandidate{os: *r.OS, priority: r.OSPriority, layer: layer, path: p}
			if best == nil || betterOS(&c, best) {
				best = &c
			}
		}
	}
	mergeFile := func(i int, p string, fo *fileOut) {
		ph := s.pathHashes(p)
		hidden := hiddenAbove(outs, i, &ph)
		for _, fr := range fo.results {
			r := fr.res
			if hidden {
				// Deleted or replaced later: only persistent findings
				// (secrets, malware) outlive it.
				if ps, ok := s.o.analyzers[fr.analyzer].(analyzer.Persistent); ok && ps.KeepsDeleted() {
					dst := &perAnalyzer[fr.analyzer]
					for _, f := range r.Findings {
						f.Layer = res.Layers[i].Digest
						dst.Findings = append(dst.Findings, f)
					}
				}
				continue
			}
			osCand(r, i, p)
			layerOf := s.attribute(outs, i, p, &ph, fr.analyzer, r.Packages)
			dst := &perAnalyzer[fr.analyzer]
			for k, pkg := range r.Packages {
				pkg.Layer = res.Layers[layerOf[k]].Digest
				dst.Packages = append(dst.Packages, pkg)
			}
			for _, f := range r.Findings {
				f.Layer = res.Layers[i].Digest
				dst.Findings = append(dst.Findings, f)
			}
		}
	}
	for i, lo := range outs {
		for p, fo := range lo.files {
			mergeFile(i, p, fo)
		}
		// Files written through a symlinked directory, at their physical
		// paths (links.go).
		for p, fo := range lo.aliased {
			mergeFile(i, p, fo)
		}
	}
	// Files read under the name a symlink gives them: resolved in the
	// final filesystem, so visible by construction (links.go).
	for _, rf := range s.resolved {
		r, digest := rf.res, res.Layers[rf.layer].Digest
		osCand(r, rf.layer, rf.path)
		dst := &perAnalyzer[rf.analyzer]
		for _, pkg := range r.Packages {
			pkg.Layer = digest
			dst.Packages = append(dst.Packages, pkg)
		}
		for _, f := range r.Findings {
			f.Layer = digest
			dst.Findings = append(dst.Findings, f)
		}
	}
	if s.aliasing || len(s.resolved) > 0 {
		// A file written through a symlink does not hide the one its
		// entry's name would replace (docker's overlay2 does not follow
		// the link, containerd does): both are reported, and what both
		// list once.
		for i := range perAnalyzer {
			r := &perAnalyzer[i]
			slices.SortFunc(r.Packages, comparePackages)
			r.Packages = slices.Compact(r.Packages)
		}
	}
	if best != nil {
		res.OS = best.os
	}

	img := &analyzer.Image{OS: res.OS, Platform: res.Platform, Layers: res.Layers, History: s.history}
	for i, a := range s.o.analyzers {
		if ca, ok := a.(analyzer.ConfigAnalyzer); ok && s.config != nil {
			r, err := ca.AnalyzeConfig(ctx, img, s.config)
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return fmt.Errorf("scan: %w", cerr)
				}
				return fmt.Errorf("scan: analyzer %s: config: %w", a.Name(), err)
			}
			if r != nil {
				for k := range r.Findings {
					if r.Findings[k].Path == "" {
						r.Findings[k].Path = "(image config)"
					}
				}
				perAnalyzer[i].Findings = append(perAnalyzer[i].Findings, r.Findings...)
				perAnalyzer[i].Packages = append(perAnalyzer[i].Packages, r.Packages...)
			}
		}
	}
	for i, a := range s.o.analyzers {
		r := &perAnalyzer[i]
		if pp, ok := a.(analyzer.PostProcessor); ok && !r.Empty() {
			if err := pp.PostProcess(ctx, img, r); err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return fmt.Errorf("scan: %w", cerr)
				}
				return fmt.Errorf("scan: analyzer %s: post-process: %w", a.Name(), err)
			}
		}
		res.Packages = append(res.Packages, r.Packages...)
		res.Findings = append(res.Findings, r.Findings...)
	}
	slices.SortFunc(res.Packages, comparePackages)
	slices.SortFunc(res.Findings, compareFindings)
	return nil
}

// hiddenAbove reports whether any layer above i hides the file at p.
func hiddenAbove(outs []*layerOut, i int, p *pathHashes) bool {
	for j := i + 1; j < len(outs); j++ {
		if outs[j].hides(p, true) {
			return true
		}
	}
	return false
}

// attribute returns, for each package found by analyzer ai in the file at
// p of layer top, the index of the layer that added it: the lowest layer
// of the unbroken run of versions of that file (same path, no deletion or
// replacement in between) that all list the package (same name, version
// and arch).
func (s *imageScan) attribute(outs []*layerOut, top int, p string, ph *pathHashes, ai int, pkgs []report.Package) []int {
	layerOf := make([]int, len(pkgs))
	for k := range layerOf {
		layerOf[k] = top
	}
	if top == 0 || len(pkgs) == 0 {
		return layerOf
	}
	active := make([]int, len(pkgs))
	for k := range active {
		active[k] = k
	}
	cur := top
	for j := top - 1; j >= 0 && len(active) > 0; j-- {
		fo, ok := outs[j].files[p]
		ao := outs[j].aliased[p].result(ai) // written through a symlink (links.go)
		if !ok && ao == nil {
			continue // checked as an intermediate layer once a lower version is found
		}
		// The version in layer j is continued by the one in cur only if
		// nothing in between deleted or replaced it, and cur did not
		// delete it before re-creating it.
		if outs[cur].hides(ph, false) {
			break
		}
		broken := false
		for k := j + 1; k < cur; k++ {
			if outs[k].hides(ph, true) {
				broken = true
				break
			}
		}
		if broken {
			break
		}
		var prev *analyzer.Result
		if ok {
			prev = fo.result(ai)
		}
		if prev == nil {
			prev = ao
		}
		if prev == nil {
			break
		}
		have := make(map[pkgKey]struct{}, len(prev.Packages))
		for _, q := range prev.Packages {
			have[pkgKey{q.Name, q.Version, q.Arch}] = struct{}{}
		}
		next := active[:0]
		for _, k := range active {
			q := &pkgs[k]
			if _, ok := have[pkgKey{q.Name, q.Version, q.Arch}]; ok {
				layerOf[k] = j
				next = append(next, k)
			}
		}
		active = next
		cur = j
	}
	return layerOf
}

func betterOS(a, b *osCandidate) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if a.layer != b.layer {
		return a.layer > b.layer
	}
	return a.path < b.path
}

func comparePackages(a, b report.Package) int {
	return cmp.Or(
		cmp.Compare(a.Ecosystem, b.Ecosystem),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Version, b.Version),
		cmp.Compare(a.Path, b.Path),
		cmp.Compare(a.Arch, b.Arch),
		cmp.Compare(a.Layer, b.Layer),
		cmp.Compare(a.Analyzer, b.Analyzer),
		cmp.Compare(a.PURL, b.PURL),
		cmp.Compare(a.SourceName, b.SourceName),
		cmp.Compare(a.SourceVersion, b.SourceVersion),
		cmp.Compare(a.Scope, b.Scope),
	)
}

func compareFindings(a, b report.Finding) int {
	return cmp.Or(
		cmp.Compare(a.Path, b.Path),
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.Rule, b.Rule),
		cmp.Compare(a.Title, b.Title),
		cmp.Compare(a.Layer, b.Layer),
		cmp.Compare(a.Severity, b.Severity),
		// One rule matching several lines of a file (and the same secret
		// under several encodings) would otherwise come out in the order
		// the unstable sort leaves them, differing between two runs.
		cmp.Compare(a.Line, b.Line),
		cmp.Compare(a.Excerpt, b.Excerpt),
		cmp.Compare(a.Encoded, b.Encoded),
		cmp.Compare(a.Engine, b.Engine),
	)
}
