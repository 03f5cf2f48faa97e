package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/services/customs/internal/scancmd"
)

// quarantineCmd talks to a running results API: list records, release an
// image, quarantine one by hand. Writes need an admin token: $CUSTOMS_TOKEN,
// --token-file, or the one `customs up` generated in its data directory.
func quarantineCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: customs quarantine needs a subcommand: list, release or add", scancmd.ErrUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("customs quarantine "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr("CUSTOMS_SERVER", "http://127.0.0.1:8082"), "results API URL ($CUSTOMS_SERVER)")
	tokenFile := fs.String("token-file", "", "file holding the API token (default: $CUSTOMS_TOKEN, else DATA/admin-token of customs up)")
	dataDir := fs.String("data", "./data", "customs up's data directory (for its generated admin token)")
	var repo, state, reason *string
	var asJSON *bool
	switch sub {
	case "list":
		repo = fs.String("repository", "", "only this repository")
		state = fs.String("state", "", "only quarantined or released")
		asJSON = fs.Bool("json", false, "print the records as JSON")
	case "release", "add":
		reason = fs.String("reason", "", "why (required; kept in the audit log)")
	default:
		return fmt.Errorf("%w: unknown quarantine subcommand %q (want list, release or add)", scancmd.ErrUsage, sub)
	}
	// Flags may follow the reference: customs quarantine release REF --reason X.
	var refs []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		refs = append(refs, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	token, err := apiToken(*tokenFile, *dataDir)
	if err != nil {
		return err
	}
	c := &apiClient{base: strings.TrimRight(*server, "/"), token: token}
	switch sub {
	case "list":
		if len(refs) > 0 {
			return fmt.Errorf("%w: customs quarantine list takes no arguments (--repository R)", scancmd.ErrUsage)
		}
		q := url.Values{}
		if *repo != "" {
			q.Set("repository", *repo)
		}
		if *state != "" {
			q.Set("state", *state)
		}
		var doc struct {
			Mode    string                  `json:"mode"`
			Records []quarantine.RecordJSON `json:"records"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/quarantine?"+q.Encode(), nil, &doc); err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(doc.Records)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATE\tMODE\tIMAGE\tRULE\tREASON\tSINCE\tBY\tENFORCEMENT")
		for _, r := range doc.Records {
			since, by := r.QuarantinedAt, r.QuarantinedBy
			if r.State == quarantine.StateReleased {
				since, by = r.ReleasedAt, r.ReleasedBy
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.State, r.Mode, r.Ref, r.Rule, r.Reason, when(since), by, enforcementSummary(r))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(doc.Records) == 0 {
			fmt.Fprintf(stderr, "no quarantine records (mode %s)\n", doc.Mode)
		}
		return nil
	}
	if len(refs) != 1 {
		return fmt.Errorf("%w: customs quarantine %s needs one REGISTRY/REPOSITORY@sha256:DIGEST", scancmd.ErrUsage, sub)
	}
	if strings.TrimSpace(*reason) == "" {
		return fmt.Errorf("%w: --reason is required (it is kept in the audit log)", scancmd.ErrUsage)
	}
	ref, err := quarantine.ParseRef(refs[0])
	if err != nil {
		return fmt.Errorf("%w: %w", scancmd.ErrUsage, err)
	}
	var doc struct {
		Record quarantine.RecordJSON `json:"record"`
		Error  string                `json:"error"`
	}
	var path string
	body := map[string]string{"reason": *reason}
	if sub == "release" {
		path = "/v1/quarantine/" + ref.Digest + "/release"
		body["registry"], body["repository"] = ref.Registry, ref.Repository
	} else {
		path = "/v1/quarantine"
		body["ref"] = ref.String()
	}
	err = c.do(ctx, http.MethodPost, path, body, &doc)
	var partial *enforcementError
	if err != nil && !errors.As(err, &partial) {
		return err
	}
	fmt.Fprintf(stdout, "%s %s (%s, generation %d)\n", doc.Record.Ref, doc.Record.State, doc.Record.Mode, doc.Record.Generation)
	for _, e := range doc.Record.Enforcement {
		line := fmt.Sprintf("  %s %s: %s", e.Enforcer, e.Action, e.Outcome)
		if e.Detail != "" {
			line += " — " + e.Detail
		}
		if e.Error != "" {
			line += " — " + e.Error
		}
		fmt.Fprintln(stdout, line)
	}
	if partial != nil {
		return fmt.Errorf("recorded, but a registry refused: %s (run the command again to retry)", partial.msg)
	}
	return nil
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func enforcementSummary(r quarantine.RecordJSON) string {
	var parts []string
	for _, e := range r.Enforcement {
		parts = append(parts, e.Enforcer+":"+e.Outcome)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// apiToken finds the token: $CUSTOMS_TOKEN, the --token-file, or the admin
// token customs up wrote into its data directory (none: anonymous, which
// customs up on loopback allows for reads).
func apiToken(file, dataDir string) (string, error) {
	if t := os.Getenv("CUSTOMS_TOKEN"); t != "" {
		return t, nil
	}
	if file == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
		if err != nil {
			return "", nil
		}
		return strings.TrimSpace(string(b)), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

type apiClient struct {
	base, token string
}

// enforcementError: the API recorded the change but a registry refused
// part of it (502 with the record).
type enforcementError struct{ msg string }

func (e *enforcementError) Error() string { return e.msg }

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%w: --server: %w", scancmd.ErrUsage, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("results API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("results API: %w", err)
	}
	if resp.StatusCode == http.StatusBadGateway && out != nil {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		if err := json.Unmarshal(raw, out); err == nil {
			return &enforcementError{msg: e.Error}
		}
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return fmt.Errorf("results API: %s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("results API: %s", resp.Status)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("results API: decode: %w", err)
	}
	return nil
}
