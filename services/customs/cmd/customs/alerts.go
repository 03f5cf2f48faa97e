package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/customs-scan/customs/services/customs/internal/scancmd"
	"github.com/customs-scan/customs/services/notifier"
)

// errAlertsFailed: some destination did not take the test message (each
// one's answer is printed).
var errAlertsFailed = errors.New("the test message did not reach every destination")

// alertsCmd: `customs alerts test` checks an alerts file and sends a
// sample alert to its destinations (or one of them), printing how each
// answered.
func alertsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: customs alerts needs a subcommand: test", scancmd.ErrUsage)
	}
	fs := flag.NewFlagSet("customs alerts test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("alerts", envOr("CUSTOMS_ALERTS_FILE", ""), "alerts file ($CUSTOMS_ALERTS_FILE)")
	only := fs.String("destination", "", "send only to this destination")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %v", scancmd.ErrUsage, fs.Args())
	}
	if *file == "" {
		return fmt.Errorf("%w: customs alerts test needs --alerts FILE", scancmd.ErrUsage)
	}
	cfg, err := notifier.LoadConfig(*file)
	if err != nil {
		return err
	}
	results, err := notifier.SendTest(ctx, cfg, *only, nil)
	if err != nil {
		return err
	}
	failed := false
	for _, r := range results {
		switch {
		case r.Err == nil:
			fmt.Fprintf(stdout, "%s (%s): sent, answered %d\n", r.Destination, r.Type, r.Status)
		default:
			failed = true
			fmt.Fprintf(stdout, "%s (%s): failed: %v\n", r.Destination, r.Type, r.Err)
		}
	}
	if failed {
		return errAlertsFailed
	}
	return nil
}
