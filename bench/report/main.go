// Command report turns `go test -bench` output from bench/run.sh into Markdown tables: the median of
// every metric over the rounds, and each variant's time as a ratio to its group's baseline.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// baselines names, per benchmark family, the variant the others are compared with.
var baselines = map[string]string{
	"BenchmarkSingleRow":  "gorm-updates-unlocked",
	"BenchmarkBulk":       "gorm-updates-id-in-unlocked",
	"BenchmarkContention": "select-for-update",
	"BenchmarkGuarded":    "plain",
}

type sample map[string][]float64 // unit -> values over rounds

func main() {
	svgPath := flag.String("svg", "", "also draw BenchmarkBulk's ratio to the unchecked floor against N, per database, into this SVG file")
	flag.Parse()
	samples := map[string]sample{}
	var order []string
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndex(name, "-"); i > 0 { // drop the GOMAXPROCS suffix
			name = name[:i]
		}
		if _, seen := samples[name]; !seen {
			samples[name] = sample{}
			order = append(order, name)
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err == nil {
				samples[name][fields[i+1]] = append(samples[name][fields[i+1]], v)
			}
		}
	}

	// Group variants by everything but their last path element: BenchmarkBulk/postgres/N=1000.
	groups := map[string][]string{}
	var groupOrder []string
	for _, name := range order {
		group := name
		if i := strings.LastIndex(name, "/"); i > 0 && strings.Count(name, "/") >= 2 {
			group = name[:i]
		}
		if _, ok := groups[group]; !ok {
			groupOrder = append(groupOrder, group)
		}
		groups[group] = append(groups[group], name)
	}

	var conflicts, eachGroups []string
	header := false
	for _, group := range groupOrder {
		family := strings.SplitN(group, "/", 2)[0]
		if family == "BenchmarkConflict" { // its own table, below
			conflicts = append(conflicts, groups[group]...)
			continue
		}
		if family == "BenchmarkEach" { // its own table, below
			eachGroups = append(eachGroups, group)
			continue
		}
		if !header {
			fmt.Println("| benchmark | variant | time/op | × baseline | allocs/op | B/op | round trips/op | retries/op |")
			fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
			header = true
		}
		var base float64
		for _, name := range groups[group] {
			if strings.HasSuffix(name, "/"+baselines[family]) {
				base = median(samples[name]["ns/op"])
			}
		}
		for _, name := range groups[group] {
			s := samples[name]
			variant := strings.TrimPrefix(name, group+"/")
			if variant == name {
				variant = "-"
			}
			ratio := ""
			if base > 0 {
				ratio = fmt.Sprintf("%.2f", median(s["ns/op"])/base)
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n",
				strings.TrimPrefix(group, "Benchmark"), variant, duration(median(s["ns/op"])), ratio,
				num(s["allocs/op"]), num(s["B/op"]), num(s["roundtrips/op"]), num(s["retries/op"]))
		}
	}
	if header && len(conflicts) > 0 {
		fmt.Println()
	}
	conflictTable(conflicts, samples)
	if (header || len(conflicts) > 0) && len(eachGroups) > 0 {
		fmt.Println()
	}
	eachTable(eachGroups, samples)
	if *svgPath != "" {
		if err := writePlotFile(*svgPath, samples); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
	}
}

// writePlotFile writes the bulk plot to path, when the samples hold BenchmarkBulk.
func writePlotFile(path string, samples map[string]sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	drawn, err := writeBulkPlot(f, samples)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !drawn {
		err = os.Remove(path) // no BenchmarkBulk in this run: no plot
	}
	return err
}

// The variants of BenchmarkEach: (a), (b), (c) and the paired conflict/success calls of (d).
const (
	eachLoop     = "optlock-updatesafely-loop-in-tx"
	eachSave     = "gorm-save-loop-in-tx-unchecked"
	eachOne      = "optlock-updateeach"
	eachConflict = "optlock-updateeach-conflict"
)

// eachTable prints BenchmarkEach, one line per database and N: the median time of (a) the UpdateSafely
// loop, (b) the unchecked Save loop and (c) UpdateEach; a/c and b/c (ratio of the medians, and the
// range of the per-round ratios); (d) the conflict call's median time and conflict/success (median and
// range of the per-round paired ratios); round trips per call of each.
func eachTable(groups []string, samples map[string]sample) {
	if len(groups) == 0 {
		return
	}
	fmt.Println("| database | N | (a) UpdateSafely loop | (b) Save loop, unchecked | (c) UpdateEach | a/c | b/c | (d) conflict | conflict/success | round trips per call a, b, c, d |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, group := range groups {
		parts := strings.Split(group, "/") // BenchmarkEach/mysql/N=1000
		a, b, c, d := samples[group+"/"+eachLoop], samples[group+"/"+eachSave], samples[group+"/"+eachOne], samples[group+"/"+eachConflict]
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s, %s, %s, %s |\n",
			parts[1], strings.TrimPrefix(parts[len(parts)-1], "N="),
			ms(median(a["ns/op"])), ms(median(b["ns/op"])), ms(median(c["ns/op"])),
			ratioWithRange(a["ns/op"], c["ns/op"]), ratioWithRange(b["ns/op"], c["ns/op"]),
			ms(median(d["conflict-ns/op"])), medianWithRange(d["conflict/success"]),
			num(a["roundtrips/op"]), num(b["roundtrips/op"]), num(c["roundtrips/op"]), num(d["conflict-roundtrips/op"]))
	}
}

// ratioWithRange is median(num)/median(den), with the range of the per-round ratios when both have a
// value in every round.
func ratioWithRange(num, den []float64) string {
	if len(num) == 0 || len(den) == 0 || median(den) == 0 {
		return ""
	}
	out := fmt.Sprintf("%.1f", median(num)/median(den))
	if len(num) == len(den) && len(num) > 1 {
		var rs []float64
		for i := range num {
			if den[i] > 0 {
				rs = append(rs, num[i]/den[i])
			}
		}
		sort.Float64s(rs)
		out += fmt.Sprintf(" (%.1f–%.1f)", rs[0], rs[len(rs)-1])
	}
	return out
}

// medianWithRange is the median of xs and their range.
func medianWithRange(xs []float64) string {
	if len(xs) == 0 {
		return ""
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 1 {
		return fmt.Sprintf("%.2f", s[0])
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", median(s), s[0], s[len(s)-1])
}

// ms writes a time in milliseconds.
func ms(ns float64) string {
	if ns == 0 {
		return ""
	}
	if ns < 1e6 {
		return fmt.Sprintf("%.3f ms", ns/1e6)
	}
	return fmt.Sprintf("%.2f ms", ns/1e6)
}

// conflictTable prints BenchmarkConflict: each path's median time, allocations and round trips, and
// the ratio of their times, median and range over the rounds (both paths are timed in the same
// iterations, so each round's ratio is a paired measurement).
func conflictTable(names []string, samples map[string]sample) {
	if len(names) == 0 {
		return
	}
	fmt.Println("| database | N | success time/op | conflict time/op | conflict/success | range over rounds | allocs/op success, conflict | round trips/op success, conflict |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, name := range names {
		s := samples[name]
		parts := strings.Split(name, "/") // BenchmarkConflict/mysql/N=1000
		ratios := append([]float64(nil), s["conflict/success"]...)
		sort.Float64s(ratios)
		spread := ""
		if len(ratios) > 0 {
			spread = fmt.Sprintf("%.2f–%.2f", ratios[0], ratios[len(ratios)-1])
		}
		fmt.Printf("| %s | %s | %s | %s | %.2f | %s | %s, %s | %s, %s |\n",
			parts[1], strings.TrimPrefix(parts[len(parts)-1], "N="),
			duration(median(s["success-ns/op"])), duration(median(s["conflict-ns/op"])),
			median(s["conflict/success"]), spread,
			num(s["success-allocs/op"]), num(s["conflict-allocs/op"]),
			num(s["success-roundtrips/op"]), num(s["conflict-roundtrips/op"]))
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func num(xs []float64) string {
	if len(xs) == 0 {
		return ""
	}
	m := median(xs)
	if m == float64(int64(m)) {
		return strconv.FormatInt(int64(m), 10)
	}
	return strconv.FormatFloat(m, 'f', 2, 64)
}

func duration(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2f s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}
