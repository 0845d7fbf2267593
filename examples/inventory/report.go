package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// width is the most columns the report takes.
const width = 78

// say writes text wrapped to width columns.
func say(w io.Writer, format string, args ...any) {
	fmt.Fprintln(w, wrap(fmt.Sprintf(format, args...), width))
}

// wrap breaks text into lines of at most n columns at spaces.
func wrap(text string, n int) string {
	var b strings.Builder
	col := 0
	for i, word := range strings.Fields(text) {
		switch {
		case i == 0:
		case col+1+len(word) > n:
			b.WriteByte('\n')
			col = 0
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
	return b.String()
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func printHeader(w io.Writer, cfg config, wl workload) {
	say(w, "optlock inventory demo on %s, table %s: %d buyers buy %d items each (%d in all) from %d products, %d in stock each.",
		cfg.dialect, tableName, len(wl.plan), cfg.purchases, wl.purchases(), wl.products, wl.stock)
	fmt.Fprintln(w)
}

var phaseText = map[phase]string{
	phaseNaive:   "read the stock, think, write stock-1 back",
	phaseLocked:  "the same write, Product guarded: checked; optlock.Retry",
	phaseRestock: "buying again, optlock.UpdateEach restocks",
}

// printPhase writes the line that says a phase is done.
func printPhase(w io.Writer, n int, r report, alone bool) {
	label := fmt.Sprintf("%d. ", n)
	if alone {
		label = ""
	}
	fmt.Fprintf(w, "%s%-8s %-44s %7s\n", label, r.phase.String()+":", phaseText[r.phase], secs(r.elapsed))
}

// printComparison is the summary of the whole demo: one screen, for a newcomer.
func printComparison(w io.Writer, res result) {
	n, l := res.naive, res.locked
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-24s %9s %9s\n", "", "no lock", "optlock")
	fmt.Fprintf(w, "%-24s %9d %9d\n", "purchases recorded", sum(n.purchases), sum(l.purchases))
	fmt.Fprintf(w, "%-24s %9d %9d\n", "stock actually removed", sum(n.purchases)-n.lost(), sum(l.purchases)-l.lost())
	fmt.Fprintf(w, "%-24s %9d %9d\n", "lost purchases", n.lost(), l.lost())
	fmt.Fprintln(w)
	if lost := n.lost(); lost > 0 {
		say(w, "Without a lock, %d of %d purchases were lost: buyers who read the same stock each wrote back stock-1, and the last write erased the others.",
			lost, sum(n.purchases))
	} else {
		say(w, "Without a lock, no purchase was lost this time: no two buyers happened to read the same stock at once (try more -buyers or a longer -think).")
	}
	fmt.Fprintln(w)
	say(w, "With optlock, a conflict is a buyer's write refused because the row changed since they read it: nothing was written. optlock.Retry then re-ran the read, think and write (a retry) on the fresh stock, so the purchase still counted.")
	retryCost(w, *l, fmt.Sprintf("; the run took %s, against %s without a lock", secs(l.elapsed), secs(n.elapsed)))
	if res.restock != nil {
		fmt.Fprintln(w)
		say(w, "%s", restockLine(*res.restock))
	}
}

// retryCost says, in indented lines, what the conflicts and retries of a locked run were and cost.
// then, if not empty, ends the last line.
func retryCost(w io.Writer, r report, then string) {
	if r.conflicts == 0 && r.retries == 0 {
		say(w, "There was no conflict this time, so nothing was retried%s.", then)
		return
	}
	item := func(name, format string, args ...any) {
		for i, line := range strings.Split(wrap(fmt.Sprintf(format, args...), width-13), "\n") {
			if i > 0 {
				name = ""
			}
			fmt.Fprintf(w, "  %-10s %s\n", name, line)
		}
	}
	if r.conflicts == r.retries {
		item("conflicts", "%d refused writes; each was re-run once, so retries = conflicts", r.conflicts)
	} else {
		item("conflicts", "%d refused writes", r.conflicts)
		item("retries", "%d re-runs of a purchase's read-modify-write", r.retries)
	}
	item("retried", "%d of %d purchases, at most %d attempts for one", r.retried, sum(r.purchases), r.maxTries)
	item("cost", "the %d buyers spent %s buying (added up), %s of it on refused tries and waiting to retry%s",
		r.buyers, secs(r.busy), secs(r.wasted), then)
}

// restockLine is the one line about the restock phase.
func restockLine(r report) string {
	rr := r.restock
	per := "1 per call"
	if rr.maxStatements != 1 {
		per = fmt.Sprintf("up to %d per call", rr.maxStatements)
	}
	verdict := "no purchase lost"
	if lost := r.lost(); lost != 0 {
		verdict = fmt.Sprintf("%d purchases LOST", lost)
	}
	return fmt.Sprintf("Restock: %d rows in %d statements (%s), %d conflicts, %s.", rr.rows, rr.written, per, rr.conflicts, verdict)
}

// printDetails is the report of a single run: per product, what was bought and what the stock shows.
func printDetails(w io.Writer, res result) {
	for _, r := range []*report{res.naive, res.locked, res.restock} {
		if r == nil {
			continue
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "product\tinitial\tpurchases\tfinal stock\tstock removed\tlost\t")
		for i, p := range r.products {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", p.Name, r.initial, r.purchases[i], p.Stock, r.removed(i), r.purchases[i]-r.removed(i))
		}
		tw.Flush()
		fmt.Fprintln(w)
		if lost := r.lost(); lost == 0 {
			say(w, "Every purchase is in the stock: no purchase was lost.")
		} else {
			say(w, "%d purchases were lost: their writes were overwritten by buyers holding stale reads.", lost)
		}
		if r.phase != phaseNaive {
			retryCost(w, *r, "")
		}
		if r.phase == phaseRestock {
			say(w, "%s", restockLine(*r))
		}
	}
}
