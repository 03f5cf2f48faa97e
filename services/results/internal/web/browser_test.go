package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/services/results"
)

// page drives one headless Chromium tab and collects what the browser
// says is wrong: console errors, uncaught exceptions, and browser log
// errors (a refused stylesheet, a CSP violation, a failed load).
type page struct {
	t         *testing.T
	ctx       context.Context
	base      string
	artifacts string

	mu       sync.Mutex
	problems []string
}

// chromium finds Debian's chromium. CI installs it (scripts/ci-deps.sh),
// so there the browser tests run; elsewhere they skip saying why.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "chromium is not on PATH: install it (Debian: apt-get install chromium, or scripts/ci-deps.sh) to run the browser tests"
	if os.Getenv("CUSTOMS_REQUIRE_BROWSER") != "" {
		// CI installed it: a browser test that silently skips there would
		// hide a broken install step.
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// artifactsDir is where screenshots go: $CUSTOMS_TEST_ARTIFACTS/web, else
// the test's temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if a := os.Getenv("CUSTOMS_TEST_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "web")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func openBrowser(t *testing.T, base string) *page {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // Debian's chromium as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	p := &page{t: t, ctx: ctx, base: base, artifacts: artifactsDir(t)}
	// Starts the browser; the console is read from then on.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				p.mu.Lock()
				p.problems = append(p.problems, fmt.Sprintf("%s (%s)", m, m.URL))
				p.mu.Unlock()
			}
		}
	}()
	t.Logf("screenshots in %s", p.artifacts)
	return p
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

func run[T any](p *page, what string, a chromedp.Action[T]) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, a)
	if err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
	return v
}

func (p *page) text(sel string) string {
	p.t.Helper()
	return run(p, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

func (p *page) count(sel string) int {
	p.t.Helper()
	return run(p, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
}

func (p *page) location() string {
	p.t.Helper()
	return strings.TrimPrefix(run(p, "location", chromedp.Location()), p.base)
}

// contains checks the visible text of main.
func (p *page) contains(what ...string) {
	p.t.Helper()
	body := p.text("main")
	for _, w := range what {
		if !strings.Contains(body, w) {
			p.t.Errorf("%s: the page does not show %q", p.location(), w)
		}
	}
}

// screenshot saves the whole page as name.png.
func (p *page) screenshot(name string) {
	p.t.Helper()
	png := run(p, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(p.artifacts, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// headingsJS lists headings that skip a level, and a page without exactly
// one h1 first.
const headingsJS = `(() => {
  const out = [];
  const hs = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')];
  if (document.querySelectorAll('h1').length !== 1) out.push('h1 count ' + document.querySelectorAll('h1').length);
  let prev = 0;
  for (const h of hs) {
    const lvl = +h.tagName[1];
    if (prev === 0 && lvl !== 1) out.push('first heading is ' + h.tagName);
    if (prev && lvl > prev + 1) out.push('h' + prev + ' then ' + h.tagName + ' "' + h.textContent.trim().slice(0, 50) + '"');
    prev = lvl;
  }
  if (!document.documentElement.lang) out.push('no lang on html');
  return out;
})()`

// controlRoles are the roles of what a user operates.
var controlRoles = []string{"textbox", "searchbox", "button", "combobox", "checkbox", "radio", "listbox", "spinbutton", "slider", "switch"}

// accessible checks the page as assistive technology sees it: every
// control has an accessible name (Chromium's own computation: label,
// aria-label, content), links have names, headings never skip a level.
func (p *page) accessible() {
	p.t.Helper()
	where := p.location()
	res, err := chromedp.Call(p.ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		p.t.Fatalf("accessibility tree of %s: %v", where, err)
	}
	controls := 0
	for _, n := range res.Nodes {
		if n.Ignored || n.Role == nil {
			continue
		}
		role := strings.Trim(string(n.Role.Value), `"`)
		name := ""
		if n.Name != nil {
			name = strings.TrimSpace(strings.Trim(string(n.Name.Value), `"`))
		}
		if slices.Contains(controlRoles, role) || role == "link" {
			controls++
			if name == "" {
				p.t.Errorf("%s: a %s without an accessible name (node %s)", where, role, n.NodeID)
			}
		}
	}
	if controls == 0 {
		p.t.Errorf("%s: no controls in the accessibility tree", where)
	}
	for _, h := range run(p, "headings", chromedp.Evaluate[[]string](headingsJS)) {
		p.t.Errorf("%s: headings: %s", where, h)
	}
}

// The web interface in a real browser: a reader follows the overview to
// a quarantined image and filters its vulnerabilities; an admin logs in
// and releases it; the big report and the index render; every page is
// checked for console errors and basic accessibility.
func TestBrowser(t *testing.T) {
	chromium(t)
	e := start(t, results.Config{APITokensFile: writeTokens(t), Quarantine: "enforce"})
	f := e.seed(t)
	bad := f.malicious.Artifact.Digest
	backlog(t, e.js, 3)
	p := openBrowser(t, e.url)

	// Not logged in: the overview sends the browser to the login form.
	p.do("open the overview", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if loc := p.location(); !strings.HasPrefix(loc, "/login?next=") {
		t.Fatalf("overview without a session went to %s", loc)
	}
	p.screenshot("01-login")
	p.accessible()
	// Keyboard: the first Tab reaches the skip link.
	p.do("tab", chromedp.KeyEvent(kb.Tab))
	if cls := run(p, "focus", chromedp.Evaluate[string]("document.activeElement.className")); cls != "skip" {
		t.Errorf("first Tab focuses %q; want the skip link", cls)
	}

	p.do("log in as a reader",
		chromedp.SendKeys(chromedp.CSS("#token"), readerToken),
		chromedp.Click(chromedp.CSS(`main form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#repos-h")))
	if loc := p.location(); loc != "/" {
		t.Errorf("after login: %s; want /", loc)
	}
	p.contains("Overview", "team-a/app", "team-a/big", "team-b/multi", "Quarantined images", "malware: XMRig cryptominer in opt/miner/xmrig",
		f.dbVersion, "30 hours old")
	if depth := p.text("#queue-depth"); depth != "3" {
		t.Errorf("scanner queue depth %q; want 3", depth)
	}
	// Quarantined images lead: the first table row is the malicious image.
	if first := p.text("#quarantined-h + table tbody tr"); !strings.Contains(first, "team-a/app") {
		t.Errorf("first quarantined row %q", first)
	}
	p.screenshot("02-overview")
	p.accessible()

	p.do("search", chromedp.SendKeys(chromedp.CSS("#q"), "big"), chromedp.Click(chromedp.CSS(`form[role="search"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`form[role="search"] a[href="/"]`)))
	if rows := p.count("table.repos tbody tr"); rows != 1 {
		t.Errorf("search for big: %d repositories; want 1", rows)
	}
	p.do("back to the overview", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS("#repos-h")))

	p.do("follow the repository", chromedp.Click(chromedp.CSS(`table.repos a[href="/repositories/team-a/app"]`)),
		chromedp.WaitVisible(chromedp.CSS("#images-h")))
	if rows := p.count("table.images tbody tr"); rows != 2 {
		t.Errorf("team-a/app lists %d images; want 2", rows)
	}
	if first := p.text("table.images tbody tr"); !strings.Contains(first, short(bad)) || !strings.Contains(first, "8 new") {
		t.Errorf("newest image row %q; want %s with 8 new vulnerabilities", first, short(bad))
	}
	p.screenshot("03-repository")
	p.accessible()

	p.do("open the image", chromedp.Click(chromedp.CSS(`table.images a[href="/images/`+bad+`"]`)), chromedp.WaitVisible(chromedp.CSS("#verdict")))
	if v := p.text("#verdict"); !strings.Contains(v, "QUARANTINE") && !strings.Contains(v, "quarantine") ||
		!strings.Contains(v, "malware: XMRig cryptominer in opt/miner/xmrig") || !strings.Contains(v, "default:malware") {
		t.Errorf("verdict headline %q", v)
	}
	p.contains("opt/miner/xmrig", "opt/miner/config.json", "app/.env", "AKIA…XY", "(image config)",
		"COPY miner/ /opt/miner/ # buildkit", "RUN |1 NPM_TOKEN=… /bin/sh -c npm ci", // the layers that added them
		"quarantined", "CVE-2023-2650", "OBJ_obj2txt is only reached with trusted certificates", // ignored, with its VEX reason
		"Compared with "+short(f.previous.Artifact.Digest), "GHSA-35jh-r3h4-6jhm")
	if n := p.count(`button.danger`); n != 0 {
		t.Errorf("a reader sees %d release buttons", n)
	}
	if rows := p.count("#vuln-table tbody tr"); rows != 10 {
		t.Errorf("%d vulnerability rows; want 10", rows)
	}
	p.screenshot("04-image")
	p.accessible()

	p.do("filter CRITICAL", chromedp.Click(chromedp.CSS("nav.chips a.sev-critical")),
		chromedp.WaitVisible(chromedp.CSS(`nav.chips a.sev-critical[aria-current="true"]`)))
	if rows := p.count("#vuln-table tbody tr"); rows != 2 {
		t.Errorf("CRITICAL filter: %d rows; want 2", rows)
	}
	if !strings.Contains(p.location(), "severity=CRITICAL") {
		t.Errorf("filter is not in the URL: %s", p.location())
	}
	p.do("fixable only", chromedp.Click(chromedp.CSS("nav.chips .toggle a")),
		chromedp.WaitVisible(chromedp.Search(`//span[@class="tag" and text()="fixable only"]`)))
	if rows := p.count("#vuln-table tbody tr"); rows != 1 {
		t.Errorf("CRITICAL fixable: %d rows; want 1", rows)
	}
	p.screenshot("05-image-critical-fixable")

	// A reader's session posting the release form gets 403.
	csrf := run(p, "csrf", chromedp.Evaluate[string](`document.querySelector('input[name=csrf]').value`))
	cookies, err := chromedp.Call(p.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{e.url}})
	if err != nil {
		t.Fatal(err)
	}
	var cookieHeader []string
	for _, c := range cookies.Cookies {
		cookieHeader = append(cookieHeader, c.Name+"="+c.Value)
		if c.Name == "customs_session" && (!c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict) {
			t.Errorf("session cookie: HttpOnly %v, SameSite %v", c.HTTPOnly, c.SameSite)
		}
	}
	form := url.Values{"csrf": {csrf}, "registry": {registry}, "repository": {"team-a/app"}, "reason": {"reader tries"}}
	resp, _ := e.call(t, http.MethodPost, "/images/"+bad+"/release", "", strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Cookie", strings.Join(cookieHeader, "; "), "Origin", e.url)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("release posted with a reader's session: %d; want 403", resp.StatusCode)
	}

	// Log out, log in as the admin, release.
	p.do("log out", chromedp.Click(chromedp.CSS(`header form button`)), chromedp.WaitVisible(chromedp.CSS("#token")))
	p.do("log in as admin", chromedp.Navigate(e.url+"/login?next=/images/"+bad), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), adminToken),
		chromedp.Click(chromedp.CSS(`main form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#verdict")))
	if n := p.count(`button.danger`); n != 1 {
		t.Fatalf("the admin sees %d release buttons; want 1", n)
	}
	p.screenshot("06-image-admin")
	p.accessible()
	p.do("release", chromedp.SendKeys(chromedp.CSS("form.release textarea"), "false positive: the miner is a test fixture"),
		chromedp.Click(chromedp.CSS("form.release button")),
		chromedp.WaitVisible(chromedp.CSS("article.record-released")))
	p.contains("Released.", "by ops: false positive", "false positive: the miner is a test fixture")
	if n := p.count(`button.danger`); n != 0 {
		t.Errorf("a released image still offers %d release buttons", n)
	}
	p.screenshot("07-image-released")
	p.accessible()

	// The 3,000-package report: a page of 100, server-side search.
	p.do("open the big report", chromedp.Navigate(e.url+"/images/"+f.big.Artifact.Digest), chromedp.WaitVisible(chromedp.CSS("#packages-h")))
	if rows := p.count("table.packages tbody tr"); rows != 100 {
		t.Errorf("big report shows %d package rows; want 100", rows)
	}
	p.contains("3000 of 3000 packages", "page 1 of 30", "600 of 600 vulnerabilities")
	p.screenshot("08-big-report")
	p.accessible()
	p.do("search packages", chromedp.SendKeys(chromedp.CSS("#pkg-q"), "pkg-0042"), chromedp.Click(chromedp.CSS(`#packages form button`)),
		chromedp.WaitVisible(chromedp.Search(`//caption[contains(., "matching")]`)))
	if rows := p.count("table.packages tbody tr"); rows != 1 {
		t.Errorf("package search: %d rows; want 1", rows)
	}

	// The index shows its platforms, each linked to its report.
	p.do("open the index", chromedp.Navigate(e.url+"/images/"+f.index.Artifact.Digest), chromedp.WaitVisible(chromedp.CSS("#platforms-h")))
	p.contains("index of 2 platforms", "linux/amd64", "linux/arm64")
	p.screenshot("09-index")
	p.accessible()
	p.do("open a platform", chromedp.Click(chromedp.CSS(`#platforms a[href="/images/`+f.children[1].Artifact.Digest+`"]`)),
		chromedp.WaitVisible(chromedp.Search(`//nav[@class="crumbs"]/span[text()="`+short(f.children[1].Artifact.Digest)+`"]`)))
	p.contains("linux/arm64", "DSA-5532-1")

	// An alert's link (/v1/reports/<digest>) opens the page.
	p.do("open an alert link", chromedp.Navigate(e.url+"/v1/reports/"+bad), chromedp.WaitVisible(chromedp.CSS("#verdict")))
	if loc := p.location(); loc != "/images/"+bad {
		t.Errorf("alert link landed on %s", loc)
	}

	time.Sleep(200 * time.Millisecond) // let the last console events arrive
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.problems {
		t.Errorf("browser console: %s", m)
	}
}

// backlog makes the scanner's consumer exist with n jobs waiting, as
// when scanning lags behind pushes.
func backlog(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := js.CreateOrUpdateConsumer(ctx, queue.JobsStream, jetstream.ConsumerConfig{
		Durable: queue.ScannerConsumer, AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := js.Publish(ctx, queue.JobsSubjectPrefix+fmt.Sprintf("test.%d", i), []byte("job")); err != nil {
			t.Fatal(err)
		}
	}
}
