package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/customs-scan/customs/pkg/apiauth"
	"github.com/customs-scan/customs/services/customs/internal/scancmd"
)

// tokenCmd makes report API tokens: `new` prints a random token and its
// tokens-file entry, `hash` prints the hash of a token read from stdin (so
// it does not land in the shell history or ps).
func tokenCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: customs token needs a subcommand: new or hash", scancmd.ErrUsage)
	}
	fs := flag.NewFlagSet("customs token "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch args[0] {
	case "new":
		name := fs.String("name", "", "token name (shows up in logs and 403 messages)")
		role := fs.String("role", "read", "read or admin")
		repos := fs.String("repositories", "", "comma-separated repository patterns the token may see (default: all)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *name == "" {
			return fmt.Errorf("%w: customs token new needs --name", scancmd.ErrUsage)
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("random token: %w", err)
		}
		token := hex.EncodeToString(b)
		entry := fmt.Sprintf("tokens:\n  - name: %s\n    sha256: %s\n    role: %s\n", *name, apiauth.Hash(token), *role)
		if list := splitList(*repos); len(list) > 0 {
			quoted := make([]string, len(list))
			for i, p := range list {
				quoted[i] = strconv.Quote(p)
			}
			entry += "    repositories: [" + strings.Join(quoted, ", ") + "]\n"
		}
		// Check the entry the way results will read it.
		if _, err := apiauth.Parse([]byte(entry)); err != nil {
			return fmt.Errorf("%w: %w", scancmd.ErrUsage, err)
		}
		fmt.Fprintf(stdout, "token (give it to the client; it is not stored anywhere): %s\n\nentry for the CUSTOMS_API_TOKENS file:\n%s", token, entry)
		return nil
	case "hash":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("read token: %w", err)
		}
		token := strings.TrimRight(line, "\r\n")
		if token == "" {
			return fmt.Errorf("%w: give the token on stdin: printf %%s \"$TOKEN\" | customs token hash", scancmd.ErrUsage)
		}
		fmt.Fprintln(stdout, apiauth.Hash(token))
		return nil
	}
	return fmt.Errorf("%w: unknown token subcommand %q (want new or hash)", scancmd.ErrUsage, args[0])
}
