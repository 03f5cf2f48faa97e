package scan

// Symlinks, resolved for the analyzers that read files at fixed places
// (analyzer.Anchored: dpkg, apk, rpm, os-release).
//
// A program in the container opens /var/lib/dpkg/status through whatever
// symlinks the image holds, so a scanner that only matches entry names is
// blind to a database that is a symlink to a file elsewhere, to an anchor
// directory that is one, and to a file written through a symlinked
// directory (a layer adds opt/d → /var/lib/dpkg, the same or a later one
// adds opt/d/status, and containerd extracts it to var/lib/dpkg/status).
//
// Layers are streamed once each, in parallel, so while a layer is walked
// the symlinks of the others are unknown. Each walk therefore records, from
// tar headers only, its symlinks (path and target, layerOut.links) and the
// directories its entries lie in (hashed, layerOut.dirs); both are cached
// with the layer. Everything else happens here, after all layers were
// walked and before merge, from those per-layer records — so a cached
// layer's entry never depends on other layers:
//
//  1. The symlinks of every layer go into one index. A symlink at p is
//     visible in the filesystem as of layer L when no layer in between
//     hides p (whiteouts, opaque directories, replacements: the rules of
//     merge.go).
//  2. Bottom-up, a layer whose entries lie below a symlink visible as of
//     that layer wrote through it (containerd resolves an entry's parent
//     within the root): its own symlinks written that way are indexed at
//     their physical paths too. Docker's overlay2 does not follow such
//     links, so the entry also stays where its name puts it: both readings
//     are reported, never one hiding the other.
//  3. In the final filesystem, each anchored analyzer's anchor directories
//     and the symlinks among their children are resolved: a child the
//     analyzer wants (Match) that resolves to a file the analyzer does not
//     read under its own name is wanted under the link's name; an anchor
//     directory that resolves elsewhere makes that directory's files
//     wanted under the anchor's name.
//  4. Only the layers that may hold such a file are read a second time
//     (none for ordinary images, Debian's etc/os-release →
//     ../usr/lib/os-release included: usr/lib/os-release is analyzed
//     under its own name). The second read verifies digest and diff_id
//     again, may not produce more bytes than the first, reads only the
//     wanted files (MaxAnalyzedFileSize, the shared memory budget) and is
//     not cached: what it finds depends on the other layers.
//
// Resolution is lexical and never leaves the image: absolute targets start
// at the image root, ".." stops at the root, at most maxLinkHops links are
// followed per path (Linux's limit), targets and paths longer than
// maxResolvePath are not followed, and the whole scan may take at most
// maxResolveSteps path components (past that the image is rejected as
// exceeding a limit). A loop, a self-link or a too-long chain resolves to
// nothing: no finding, no error.

import (
	"archive/tar"
	"context"
	"hash/maphash"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/customs-scan/customs/pkg/scan/analyzer"
)

const (
	// maxLinkHops is how many symlinks one resolution follows (Linux's
	// MAXSYMLINKS).
	maxLinkHops = 40
	// maxResolvePath bounds a path or target that is resolved, and a
	// resolved path (PATH_MAX).
	maxResolvePath = 4096
	// maxResolveComponents bounds the components one resolution walks.
	maxResolveComponents = 8192
	// maxResolveSteps bounds the components all resolutions of a scan
	// walk (ordinary images walk a few dozen).
	maxResolveSteps = 1 << 20
	// maxLinkBytes bounds the symlink names and targets a scan keeps, each
	// link counted with linkOverhead more.
	maxLinkBytes = 64 << 20
	linkOverhead = 64
)

// linkDef is a symlink at some path: its layer and target.
type linkDef struct {
	layer  int
	target string
}

// linkIndex holds every layer's symlinks, by path.
type linkIndex struct {
	s      *imageScan
	outs   []*layerOut
	defs   map[string][]linkDef // by path; layers ascending
	byHash map[uint64][]string  // paths of defs by hash, for layerOut.dirs
	sorted []string             // paths of defs, sorted
	steps  atomic.Int64
}

func (s *imageScan) newLinkIndex(outs []*layerOut) *linkIndex {
	x := &linkIndex{s: s, outs: outs, defs: map[string][]linkDef{}, byHash: map[uint64][]string{}}
	for i, lo := range outs {
		for _, l := range lo.links {
			x.add(l.path, linkDef{layer: i, target: l.target})
		}
	}
	return x
}

func (x *linkIndex) add(p string, d linkDef) {
	ds, ok := x.defs[p]
	if !ok {
		h := maphash.String(x.s.seed, p)
		x.byHash[h] = append(x.byHash[h], p)
	}
	i := len(ds)
	for i > 0 && ds[i-1].layer > d.layer {
		i--
	}
	x.defs[p] = slices.Insert(ds, i, d)
}

// lookup returns the target of the symlink at p in the filesystem as of
// layer top (all of top's own entries applied), if p is one there.
func (x *linkIndex) lookup(p string, top int) (string, bool) {
	ds := x.defs[p]
	if len(ds) == 0 {
		return "", false
	}
	var ph *pathHashes
	for i := len(ds) - 1; i >= 0; i-- {
		d := ds[i]
		if d.layer > top {
			continue
		}
		if d.layer < top {
			if ph == nil {
				h := x.s.pathHashes(p)
				ph = &h
			}
			// The budget pays for the hide checks too.
			x.steps.Add(int64(top-d.layer) * int64(len(ph.ancestors)+1))
			hidden := false
			for k := d.layer + 1; k <= top; k++ {
				if x.outs[k].hides(ph, true) {
					hidden = true
					break
				}
			}
			if hidden {
				continue
			}
		}
		return d.target, true
	}
	return "", false
}

// resolve returns the physical path p names in the filesystem as of layer
// top, following every symlink on the way (the last component's only with
// followLast): "." for the root. ok is false when p cannot be resolved: a
// loop, more than maxLinkHops links, a path or target too long, or the
// scan's budget spent.
func (x *linkIndex) resolve(p string, top int, followLast bool) (string, bool) {
	if len(p) > maxResolvePath {
		return "", false
	}
	var todo []string // components left, the next one last
	push := func(q string) bool {
		start := len(todo)
		for c := range strings.SplitSeq(q, "/") {
			if c != "" && c != "." {
				todo = append(todo, c)
			}
		}
		slices.Reverse(todo[start:])
		return len(todo) <= maxResolveComponents
	}
	if !push(p) {
		return "", false
	}
	cur := "" // the root
	hops, steps := 0, 0
	for len(todo) > 0 {
		c := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if steps++; steps > maxResolveComponents || x.steps.Add(1) > maxResolveSteps {
			return "", false
		}
		if c == ".." { // never above the root
			if i := strings.LastIndexByte(cur, '/'); i >= 0 {
				cur = cur[:i]
			} else {
				cur = ""
			}
			continue
		}
		next := c
		if cur != "" {
			if len(cur)+1+len(c) > maxResolvePath {
				return "", false
			}
			next = cur + "/" + c
		}
		if len(todo) > 0 || followLast {
			if t, ok := x.lookup(next, top); ok {
				if hops++; hops > maxLinkHops || t == "" || len(t) > maxResolvePath {
					return "", false
				}
				if t[0] == '/' {
					cur = "" // absolute targets start at the image root
				}
				if !push(t) {
					return "", false
				}
				continue
			}
		}
		cur = next
	}
	if cur == "" {
		return ".", true
	}
	return cur, true
}

func (x *linkIndex) exhausted() bool { return x.steps.Load() > maxResolveSteps }

// hasLinkBelow reports whether some symlink lies strictly below dir.
func (x *linkIndex) hasLinkBelow(dir string) bool {
	if dir == "." {
		return len(x.sorted) > 0
	}
	prefix := dir + "/"
	i, _ := slices.BinarySearch(x.sorted, prefix)
	return i < len(x.sorted) && strings.HasPrefix(x.sorted[i], prefix)
}

// aliasSet are the symlinks, visible as of a layer, below which that
// layer has entries.
type aliasSet struct {
	hashes map[uint64]struct{}
	paths  []string
}

// want is an anchored analyzer and a name: an anchor directory (dirWants)
// or the path under which a file is wanted (fileWants).
type want struct {
	analyzer int
	name     string
}

type linkPlan struct {
	s        *imageScan
	x        *linkIndex
	outs     []*layerOut
	anchored []int                // indices of the Anchored analyzers
	anchors  [][]string           // by analyzer index
	alias    map[int]*aliasSet    // layers that wrote through symlinks
	physical map[string][]want    // physical anchor directory → its anchors
	dirs     map[string][]want    // files of a redirected anchor: physical dir → (analyzer, anchor)
	files    map[string][]want    // physical path → (analyzer, wanted path)
	interest map[string]struct{}  // physical directories the above lie in
	rereads  map[int]*rereadState // layers read again
}

// resolvedFile is an analyzer's result for a file read under the name a
// symlink gives it: visible in the final filesystem by construction.
type resolvedFile struct {
	fileResult
	layer int
	path  string // the wanted name
	phys  string // where the content lies
}

// resolveLinks plans and runs the second reads, filling outs[i].aliased
// and s.resolved for merge.
func (s *imageScan) resolveLinks(ctx context.Context, metas []layerMeta, outs []*layerOut) error {
	p := &linkPlan{s: s, outs: outs, anchors: make([][]string, len(s.o.analyzers))}
	for i, a := range s.o.analyzers {
		if an, ok := a.(analyzer.Anchored); ok {
			p.anchored = append(p.anchored, i)
			for _, d := range an.Anchors() {
				p.anchors[i] = append(p.anchors[i], cleanAnchor(d))
			}
		}
	}
	if len(p.anchored) == 0 || !slices.ContainsFunc(outs, func(lo *layerOut) bool { return len(lo.links) > 0 }) {
		return nil // ordinary images without symlinks: nothing to do
	}
	p.x = s.newLinkIndex(outs)
	p.findAliases()
	p.x.sorted = make([]string, 0, len(p.x.defs))
	for q := range p.x.defs {
		p.x.sorted = append(p.x.sorted, q)
	}
	slices.Sort(p.x.sorted)
	p.findWants()
	layers := p.layers()
	if p.x.exhausted() {
		return limitImage("resolving the image's symlinks takes more than %d steps", maxResolveSteps)
	}
	if len(layers) == 0 {
		return nil
	}
	err := s.eachLayer(ctx, len(layers), func(ctx context.Context, k int) error {
		return p.reread(ctx, &metas[layers[k]], p.rereads[layers[k]])
	})
	if err != nil {
		return err
	}
	if p.x.exhausted() {
		return limitImage("resolving the image's symlinks takes more than %d steps", maxResolveSteps)
	}
	p.assemble(layers)
	return nil
}

func cleanAnchor(d string) string {
	d = strings.TrimPrefix(path.Clean("/"+d), "/")
	if d == "" {
		return "."
	}
	return d
}

// findAliases finds, bottom-up, the layers with entries below a symlink
// visible as of that layer, and indexes their symlinks written that way
// at their physical paths.
func (p *linkPlan) findAliases() {
	x := p.x
	for L, lo := range p.outs {
		set := p.wroteThrough(L)
		if set == nil {
			continue
		}
		added := false
		for _, l := range lo.links {
			if !set.covers(x.s.seed, path.Dir(l.path)) {
				continue
			}
			d, ok := x.resolve(path.Dir(l.path), L, true)
			if !ok {
				continue
			}
			if pp := joinPath(d, path.Base(l.path)); pp != l.path {
				x.add(pp, linkDef{layer: L, target: l.target})
				added = true
			}
		}
		if added {
			set = p.wroteThrough(L)
		}
		if p.alias == nil {
			p.alias = map[int]*aliasSet{}
		}
		p.alias[L] = set
	}
}

// wroteThrough returns the symlinks visible as of layer L below which L
// has entries (nil when none).
func (p *linkPlan) wroteThrough(L int) *aliasSet {
	var set *aliasSet
	add := func(h uint64, q string) {
		if _, ok := p.x.lookup(q, L); !ok {
			return
		}
		if set == nil {
			set = &aliasSet{hashes: map[uint64]struct{}{}}
		}
		set.hashes[h] = struct{}{}
		set.paths = append(set.paths, q)
	}
	seed, lo := p.s.seed, p.outs[L]
	if lo.cached && lo.dirs == nil && len(p.x.defs) > len(lo.paths)/16 {
		// Many links: hashing the layer's directories once is cheaper
		// than a binary search per link.
		set := map[uint64]struct{}{}
		last := ""
		for _, q := range lo.paths {
			if d := path.Dir(q); d != last {
				last = d
				addDirs(set, seed, d)
			}
		}
		lo.dirs = sortedKeys(set)
	}
	if lo.dirs != nil && len(lo.dirs) < len(p.x.defs) {
		for _, h := range lo.dirs {
			for _, q := range p.x.byHash[h] {
				add(h, q)
			}
		}
		return set
	}
	for q := range p.x.defs {
		if lo.below(seed, q) {
			add(maphash.String(seed, q), q)
		}
	}
	return set
}

// covers reports whether dir is one of the set's links or lies below one.
func (a *aliasSet) covers(seed maphash.Seed, dir string) bool {
	for d := dir; d != "."; d = path.Dir(d) {
		if _, ok := a.hashes[maphash.String(seed, d)]; ok {
			return true
		}
	}
	return false
}

func joinPath(dir, base string) string {
	if dir == "." {
		return base
	}
	return dir + "/" + base
}

// findWants resolves the anchors and the symlinks among their children in
// the final filesystem.
func (p *linkPlan) findWants() {
	x, top := p.x, len(p.outs)-1
	p.physical = map[string][]want{}
	p.dirs = map[string][]want{}
	p.files = map[string][]want{}
	for _, i := range p.anchored {
		for _, A := range p.anchors[i] {
			c, ok := x.resolve(A, top, true)
			if !ok {
				continue // a loop: nothing there
			}
			if c != A && slices.Contains(p.anchors[i], c) {
				continue // its files are read under their own names (var/lib/rpm → ../../usr/lib/sysimage/rpm)
			}
			p.physical[c] = append(p.physical[c], want{i, A})
			if c != A {
				p.dirs[c] = append(p.dirs[c], want{i, A})
			}
		}
	}
	for lp := range x.defs {
		ws := p.physical[path.Dir(lp)]
		if len(ws) == 0 {
			continue
		}
		if _, ok := x.lookup(lp, top); !ok {
			continue
		}
		base := path.Base(lp)
		for _, w := range ws {
			a := p.s.o.analyzers[w.analyzer]
			name := joinPath(w.name, base)
			if !a.Match(name, 0, 0) {
				continue
			}
			r, ok := x.resolve(name, top, true)
			if !ok || a.Match(r, 0, 0) {
				continue // nothing there, or read under its own name
			}
			p.files[r] = append(p.files[r], want{w.analyzer, name})
		}
	}
	p.interest = map[string]struct{}{}
	for d := range p.physical {
		p.interest[d] = struct{}{}
	}
	for r := range p.files {
		p.interest[path.Dir(r)] = struct{}{}
	}
}

// layers returns, ascending, the layers to read again, and prepares their
// state.
func (p *linkPlan) layers() []int {
	x, s := p.x, p.s
	p.rereads = map[int]*rereadState{}
	need := func(L int) {
		if p.rereads[L] == nil {
			p.rereads[L] = &rereadState{p: p, layer: L, alias: p.alias[L], cands: map[string][]jobResult{}}
		}
	}
	// Entries written through a symlink may land where an analyzer looks
	// when the link leads to (or above) such a place, or to a directory
	// holding further links.
	for L, set := range p.alias {
		for _, q := range set.paths {
			c, ok := x.resolve(q, L, true)
			if ok && p.routes(c) {
				need(L)
				break
			}
		}
	}
	for c := range p.dirs {
		for L, lo := range p.outs {
			if lo.below(s.seed, c) {
				need(L)
			}
		}
	}
	for r := range p.files {
		if L := p.holder(r); L >= 0 {
			need(L)
		}
	}
	layers := make([]int, 0, len(p.rereads))
	for L := range p.rereads {
		layers = append(layers, L)
	}
	slices.Sort(layers)
	return layers
}

func (p *linkPlan) routes(c string) bool {
	if c == "." {
		return true
	}
	for d := range p.interest {
		if d == c || strings.HasPrefix(d, c+"/") {
			return true
		}
	}
	return p.x.hasLinkBelow(c)
}

// holder returns the layer whose entry at r is visible in the final
// filesystem, -1 when none (entries written through symlinks are found by
// the second reads of the layers that wrote them).
func (p *linkPlan) holder(r string) int {
	outs := p.outs
	ph := p.s.pathHashes(r)
	for j := len(outs) - 1; j >= 1; j-- {
		if outs[j].hasEntry(ph.self, false) {
			if hiddenAbove(outs, j, &ph) {
				return -1
			}
			return j
		}
	}
	// The bottom layer keeps no entries: its directories tell whether it
	// may hold r.
	if outs[0].below(p.s.seed, path.Dir(r)) && !hiddenAbove(outs, 0, &ph) {
		return 0
	}
	return -1
}

// rereadState is the second read of one layer.
type rereadState struct {
	p     *linkPlan
	layer int
	alias *aliasSet         // nil: the layer wrote through no symlink
	memo  map[string]string // entry directory → physical directory
	jobs  []fileJob
	// cands are the results by physical path (a later entry at the same
	// path replaces them).
	cands map[string][]jobResult
}

// reread streams layer m again and analyzes the files the plan wants.
func (p *linkPlan) reread(ctx context.Context, m *layerMeta, st *rereadState) error {
	s := p.s
	s.progress()
	defer s.progress()
	lw := &layerWalk{s: s, m: m, ctx: ctx, out: p.outs[m.index], reread: true}
	digestHash, diffHash, err := lw.check()
	if err != nil {
		return err
	}
	return lw.run(digestHash, diffHash, func(tr *tar.Reader) error { return st.walk(lw, tr) })
}

func (st *rereadState) walk(lw *layerWalk, tr *tar.Reader) error {
	s := lw.s
	var n int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return lw.classify(err, "invalid tar archive")
		}
		if n++; n%progressEntries == 0 {
			if err := lw.ctx.Err(); err != nil {
				return err
			}
			s.progress()
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, problem := cleanName(hdr.Name, !s.o.rejectAbsolute)
		if problem != "" {
			return lw.reject(nil, "tar entry %q %s", hdr.Name, problem)
		}
		if name == "." || strings.HasPrefix(path.Base(name), ".wh.") {
			continue
		}
		phys := st.physical(name)
		if len(st.cands) > 0 {
			delete(st.cands, phys)
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		default:
			continue
		}
		mode := hdr.FileInfo().Mode()
		jobs := st.wanted(name, phys, mode, hdr.Size)
		if len(jobs) == 0 {
			continue
		}
		results, err := lw.analyzeFile(tr, hdr, name, mode, jobs, nil)
		if err != nil {
			return err
		}
		if len(results) > 0 {
			st.cands[phys] = results
		}
	}
}

// physical returns where the entry name lies once its directory is
// resolved through the symlinks it was written through.
func (st *rereadState) physical(name string) string {
	if st.alias == nil {
		return name
	}
	d := path.Dir(name)
	pd, ok := st.memo[d]
	if !ok {
		pd = d
		if st.alias.covers(st.p.s.seed, d) {
			if r, ok := st.p.x.resolve(d, st.layer, true); ok {
				pd = r
			}
		}
		if st.memo == nil {
			st.memo = map[string]string{}
		}
		st.memo[d] = pd
	}
	if pd == d {
		return name
	}
	return joinPath(pd, path.Base(name))
}

// wanted lists the analyzers that read the regular file at phys (entry
// name) and the name each reads it under.
func (st *rereadState) wanted(name, phys string, mode fs.FileMode, size int64) []fileJob {
	p := st.p
	as := p.s.o.analyzers
	jobs := st.jobs[:0]
	if phys != name {
		// Written through a symlinked directory: read under its physical
		// path by the analyzers that want that and did not read it under
		// its name.
		for _, i := range p.anchored {
			if as[i].Match(phys, mode, size) && !as[i].Match(name, mode, size) {
				jobs = append(jobs, fileJob{analyzer: i, path: phys})
			}
		}
	}
	// Wanted under another name (the first read analyzed it under the
	// entry's own).
	if ws := p.dirs[path.Dir(phys)]; len(ws) > 0 {
		base := path.Base(phys)
		for _, w := range ws {
			if n := joinPath(w.name, base); n != name && as[w.analyzer].Match(n, mode, size) {
				jobs = append(jobs, fileJob{analyzer: w.analyzer, path: n})
			}
		}
	}
	for _, w := range p.files[phys] {
		if w.name != name && as[w.analyzer].Match(w.name, mode, size) {
			jobs = append(jobs, fileJob{analyzer: w.analyzer, path: w.name})
		}
	}
	st.jobs = jobs
	return jobs
}

// assemble turns the second reads' results into outs[i].aliased (merged
// as files at their physical paths) and s.resolved (the uppermost visible
// file read under each wanted name).
func (p *linkPlan) assemble(layers []int) {
	s, outs := p.s, p.outs
	type key struct {
		analyzer int
		name     string
	}
	best := map[key]resolvedFile{}
	for _, L := range layers {
		for phys, rs := range p.rereads[L].cands {
			var ph *pathHashes
			for _, r := range rs {
				if r.path == phys {
					// Only aliased jobs use the physical path: a wanted
					// name is never its own resolution.
					lo := outs[L]
					if lo.aliased == nil {
						lo.aliased = map[string]*fileOut{}
					}
					fo := lo.aliased[phys]
					if fo == nil {
						fo = &fileOut{}
						lo.aliased[phys] = fo
					}
					fo.results = append(fo.results, r.fileResult)
					s.aliasing = true
					continue
				}
				if ph == nil {
					h := s.pathHashes(phys)
					ph = &h
				}
				if hiddenAbove(outs, L, ph) {
					continue
				}
				k := key{r.analyzer, r.path}
				if b, ok := best[k]; ok && (b.layer > L || b.layer == L && b.phys < phys) {
					continue
				}
				best[k] = resolvedFile{fileResult: r.fileResult, layer: L, path: r.path, phys: phys}
			}
		}
	}
	for _, rf := range best {
		s.resolved = append(s.resolved, rf)
	}
	slices.SortFunc(s.resolved, func(a, b resolvedFile) int {
		if c := strings.Compare(a.path, b.path); c != 0 {
			return c
		}
		return a.analyzer - b.analyzer
	})
}
