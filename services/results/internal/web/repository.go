package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/customs-scan/customs/services/results/internal/reportstore"
)

// Images listed on a repository page: imagesPerPage by default, up to
// maxImages with ?n=.
const (
	imagesPerPage = 50
	maxImages     = 500
)

// imageRow is one image of a repository page.
type imageRow struct {
	Image  reportstore.Image
	Link   string
	Counts []sevCount
	// CountsKnown: the summary has counts by severity (older ones don't).
	CountsKnown bool
	Index       bool
	// Change says what is new against the image this one replaced.
	Change changeNote
}

// changeNote is the "since the previous image" cell.
type changeNote struct {
	// Known: New is meaningful; else Text says why not.
	Known bool
	New   int
	// Previous is the short digest it is compared with.
	Previous     string
	PreviousLink string
	Text         string
}

type repositoryPage struct {
	Name     string
	Images   []imageRow
	MoreLink string
}

func (h *handler) repository(w http.ResponseWriter, r *http.Request) {
	name, err := url.PathUnescape(chi.URLParam(r, "*"))
	name = strings.TrimSuffix(name, "/")
	p := principalOf(r)
	if err != nil || !repositoryRE.MatchString(name) || !p.CanSee(name) {
		h.notFound(w, r, "repository "+name)
		return
	}
	n := imagesPerPage
	if v, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && v > 0 {
		n = min(v, maxImages)
	}
	// One more than shown: the last shown image's predecessor.
	images, err := h.d.Store.Images(r.Context(), name, n+1)
	if err != nil {
		h.unavailable(w, r, err, "repository listing")
		return
	}
	if len(images) == 0 {
		h.notFound(w, r, "repository "+name)
		return
	}
	body := repositoryPage{Name: name}
	for i, img := range images[:min(len(images), n)] {
		row := imageRow{Image: img, Link: "/images/" + img.Digest, Counts: countsOf(img.Severities),
			CountsKnown: img.Severities != nil || img.Vulnerabilities == 0, Index: isIndex(img.MediaType)}
		row.Change = changeSince(images, i)
		body.Images = append(body.Images, row)
	}
	if len(images) > n && n < maxImages {
		body.MoreLink = repositoryLink(name) + "?n=" + strconv.Itoa(min(n*4, maxImages))
	}
	data := h.frame(r, name)
	data.Body = body
	h.render(w, r, http.StatusOK, "repository", data)
}

// changeSince compares images[i] with the image it replaced, as alerts
// do: the next older push that named one of its tags, else the next older
// push. The listing's vulnerability keys make this a set difference, with
// no report read.
func changeSince(images []reportstore.Image, i int) changeNote {
	cur := images[i]
	prev := -1
	for j := i + 1; j < len(images); j++ {
		if slices.ContainsFunc(images[j].PushedTags, func(t string) bool { return slices.Contains(cur.PushedTags, t) }) {
			prev = j
			break
		}
	}
	if prev < 0 && i+1 < len(images) {
		prev = i + 1
	}
	if prev < 0 {
		return changeNote{Text: "first image listed"}
	}
	if isIndex(cur.MediaType) || isIndex(images[prev].MediaType) {
		return changeNote{Text: "see the report", Previous: shortDigest(images[prev].Digest), PreviousLink: "/images/" + images[prev].Digest}
	}
	n := reportstore.NewVulnerabilities(cur, images[prev])
	note := changeNote{Previous: shortDigest(images[prev].Digest), PreviousLink: "/images/" + images[prev].Digest}
	if n < 0 {
		note.Text = "not recorded"
		return note
	}
	note.Known, note.New = true, n
	return note
}
