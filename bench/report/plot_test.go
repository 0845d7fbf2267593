package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// TestBulkPlotIsWellFormedAndPlacesTheRatios: the plot is well-formed SVG with one panel per database
// in the tables' order, one polyline per variant, and each point's title giving its ratio to the floor.
func TestBulkPlotIsWellFormedAndPlacesTheRatios(t *testing.T) {
	samples := map[string]sample{}
	for _, db := range []string{"mysql", "sqlite"} {
		for _, n := range []string{"10", "1000"} {
			group := "BenchmarkBulk/" + db + "/N=" + n
			samples[group+"/gorm-updates-id-in-unlocked"] = sample{"ns/op": {100, 100, 300}}
			samples[group+"/optlock-updatesafely"] = sample{"ns/op": {125}}
			samples[group+"/official-plugin-loop-in-tx"] = sample{"ns/op": {2000}}
		}
	}
	var out strings.Builder
	drawn, err := writeBulkPlot(&out, samples)
	if err != nil || !drawn {
		t.Fatalf("drawn %v, err %v", drawn, err)
	}
	svg := out.String()
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
	}
	if got := strings.Count(svg, "<polyline"); got != 4 {
		t.Errorf("%d polylines, want 4 (2 databases × 2 variants)", got)
	}
	if !strings.Contains(svg, "optlock UpdateSafely N=1000: 1.25×") || !strings.Contains(svg, "N=10: 20.00×") {
		t.Errorf("the points' ratios are not the medians over the floor's median:\n%s", svg)
	}
	if strings.Index(svg, "sqlite:") > strings.Index(svg, "mysql:") {
		t.Error("sqlite's panel should come before mysql's")
	}
	if drawn, _ := writeBulkPlot(io.Discard, map[string]sample{"BenchmarkSingleRow/sqlite/x": {"ns/op": {1}}}); drawn {
		t.Error("drew a plot without BenchmarkBulk")
	}
}
