package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// plotVariants are the BenchmarkBulk variants drawn, as a ratio to the unchecked floor
// (gorm-updates-id-in-unlocked), with their colours.
var plotVariants = []struct{ name, label, colour string }{
	{"optlock-updatesafely", "optlock UpdateSafely", "#1f77b4"},
	{"official-plugin-loop-in-tx", "official plugin, row by row in a transaction", "#ff7f0e"},
}

// Panel geometry, in SVG user units.
const (
	panelWidth, panelHeight = 300.0, 220.0
	marginLeft, marginTop   = 50.0, 40.0
	marginBottom, gap       = 40.0, 30.0
)

// writeBulkPlot draws BenchmarkBulk's time ratio to the unchecked floor against N, one panel per
// database, both axes logarithmic, as SVG. It reports false when the samples hold no BenchmarkBulk.
func writeBulkPlot(w io.Writer, samples map[string]sample) (bool, error) {
	// ratios[database][variant][N] = median time / median floor time.
	ratios := map[string]map[string]map[int]float64{}
	for name, s := range samples {
		parts := strings.Split(name, "/") // BenchmarkBulk/postgres/N=1000/optlock-updatesafely
		if len(parts) != 4 || parts[0] != "BenchmarkBulk" || !strings.HasPrefix(parts[2], "N=") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(parts[2], "N="))
		if err != nil {
			continue
		}
		floor := median(samples[strings.Join(parts[:3], "/")+"/"+baselines["BenchmarkBulk"]]["ns/op"])
		if floor == 0 || median(s["ns/op"]) == 0 {
			continue
		}
		db, variant := parts[1], parts[3]
		if ratios[db] == nil {
			ratios[db] = map[string]map[int]float64{}
		}
		if ratios[db][variant] == nil {
			ratios[db][variant] = map[int]float64{}
		}
		ratios[db][variant][n] = median(s["ns/op"]) / floor
	}
	if len(ratios) == 0 {
		return false, nil
	}
	databases := make([]string, 0, len(ratios))
	for db := range ratios {
		databases = append(databases, db)
	}
	sort.Slice(databases, func(i, j int) bool { return dbOrder(databases[i]) < dbOrder(databases[j]) })

	// Shared axes: N over the sizes measured, ratios from the lowest to the highest (at least 0.5-2).
	minN, maxN, minR, maxR := math.Inf(1), math.Inf(-1), 0.5, 2.0
	for _, byVariant := range ratios {
		for _, byN := range byVariant {
			for n, r := range byN {
				minN, maxN = math.Min(minN, float64(n)), math.Max(maxN, float64(n))
				minR, maxR = math.Min(minR, r), math.Max(maxR, r)
			}
		}
	}
	if minN == maxN {
		maxN = minN * 10
	}
	x := func(n float64) float64 {
		return marginLeft + (math.Log10(n)-math.Log10(minN))/(math.Log10(maxN)-math.Log10(minN))*panelWidth
	}
	y := func(r float64) float64 {
		return marginTop + (math.Log10(maxR)-math.Log10(r))/(math.Log10(maxR)-math.Log10(minR))*panelHeight
	}

	total := float64(len(databases))*(marginLeft+panelWidth+gap) + gap
	height := marginTop + panelHeight + marginBottom + 20*float64(len(plotVariants)) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", total, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, db := range databases {
		fmt.Fprintf(&b, `<g transform="translate(%.0f,0)">`+"\n", float64(i)*(marginLeft+panelWidth+gap))
		fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="13" font-weight="bold">%s: time ÷ unchecked floor</text>`+"\n", marginLeft, db)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`+"\n", marginLeft, marginTop, panelWidth, panelHeight)
		for r := math.Pow(10, math.Floor(math.Log10(minR))); r <= maxR*1.0001; r *= 10 {
			for _, m := range []float64{1, 2, 5} {
				v := r * m
				if v < minR || v > maxR {
					continue
				}
				fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%g</text>`+"\n",
					marginLeft, marginLeft+panelWidth, y(v), y(v), marginLeft-4, y(v)+4, v)
			}
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#333" stroke-dasharray="4 3"/>`+"\n",
			marginLeft, marginLeft+panelWidth, y(1), y(1))
		for n := minN; n <= maxN*1.0001; n *= 10 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">N=%g</text>`+"\n", x(n), marginTop+panelHeight+16, n)
		}
		for _, v := range plotVariants {
			byN := ratios[db][v.name]
			ns := make([]int, 0, len(byN))
			for n := range byN {
				ns = append(ns, n)
			}
			sort.Ints(ns)
			var points []string
			for _, n := range ns {
				points = append(points, fmt.Sprintf("%.1f,%.1f", x(float64(n)), y(byN[n])))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s N=%d: %.2f×</title></circle>`+"\n",
					x(float64(n)), y(byN[n]), v.colour, v.label, n, byN[n])
			}
			if len(points) > 1 {
				fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(points, " "), v.colour)
			}
		}
		b.WriteString("</g>\n")
	}
	for i, v := range plotVariants {
		ly := marginTop + panelHeight + marginBottom + 20*float64(i)
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="%s" stroke-width="2"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			marginLeft, marginLeft+24, ly, ly, v.colour, marginLeft+30, ly+4, v.label)
	}
	ly := marginTop + panelHeight + marginBottom + 20*float64(len(plotVariants))
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#333" stroke-dasharray="4 3"/><text x="%.0f" y="%.0f">1×: the unchecked floor, GORM's UPDATE … WHERE id IN ? without a check; both axes logarithmic</text>`+"\n",
		marginLeft, marginLeft+24, ly, ly, marginLeft+30, ly+4)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return true, err
}

// dbOrder puts the databases in the order the other tables use.
func dbOrder(db string) int {
	switch db {
	case "sqlite":
		return 0
	case "postgres":
		return 1
	case "mysql":
		return 2
	}
	return 3
}
