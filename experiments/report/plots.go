package report

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/machsend/machsend/experiments/bench"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/experiments/stats"
)

// save writes a plot as PNG and SVG. gonum/plot panics on data it cannot
// draw (a zero on a log axis); that becomes an error, not a crash.
func save(p *plot.Plot, dir, name string, w, h vg.Length) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plot %s: %v", name, r)
		}
	}()
	for _, ext := range []string{".png", ".svg"} {
		if err := p.Save(w, h, filepath.Join(dir, name+ext)); err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
	}
	return nil
}

// grid is a profile x profile success-rate matrix for one method.
type grid struct {
	names []string
	rate  map[[2]int]float64
}

func (g grid) Dims() (c, r int)   { return len(g.names), len(g.names) }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return float64(r) }
func (g grid) Z(c, r int) float64 { return g.rate[[2]int{c, r}] }

func writePlots(dir string, trials []*spec.Trial, cells []*CellStats) error {
	if err := writeHeatmaps(dir, cells); err != nil {
		return err
	}
	// The per-method figures are over two-nat trials.
	if ms := summariseMethods(trials, "two-nat"); len(ms) > 0 {
		for _, f := range []func(string, []*MethodStats) error{plotSuccess, plotConnectCDF, plotAttempts} {
			if err := f(dir, ms); err != nil {
				return err
			}
		}
	}
	return writeThroughputPlot(dir)
}

// writeHeatmaps draws one heatmap per method over the two-nat cells.
func writeHeatmaps(dir string, cells []*CellStats) error {
	names := map[string]bool{}
	for _, c := range cells {
		if c.Cell.Topology == "two-nat" && c.Cell.Case == "" {
			pa, pb := c.Cell.SideProfiles()
			names[pa], names[pb] = true, true
		}
	}
	var order []string
	for n := range names {
		order = append(order, n)
	}
	sort.Strings(order)
	if len(order) < 2 {
		return nil
	}
	for _, m := range spec.AllMethods {
		if p := heatmap(m, order, cells); p != nil {
			if err := saveBeside(p, colorBar(), dir, "heatmap-"+m, 10*vg.Inch, 8*vg.Inch, 1.2*vg.Inch); err != nil {
				return err
			}
		}
	}
	return nil
}

// heatPalette is the heatmaps' colour map over [min, max].
func heatPalette(min, max float64) palette.ColorMap {
	pal := moreland.SmoothBlueRed()
	pal.SetMin(min)
	pal.SetMax(max)
	return pal
}

// colorBar is the heatmaps' key: success rate in percent.
func colorBar() *plot.Plot {
	p := plot.New()
	p.HideX()
	p.Y.Label.Text = "success rate (%)"
	p.Add(&plotter.ColorBar{ColorMap: heatPalette(0, 100), Vertical: true, Colors: 64})
	return p
}

// saveBeside writes main with side drawn in a strip of width sideW at its
// right, as PNG and SVG (see save).
func saveBeside(main, side *plot.Plot, dir, name string, w, h, sideW vg.Length) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plot %s: %v", name, r)
		}
	}()
	for _, ext := range []string{"png", "svg"} {
		c, err := draw.NewFormattedCanvas(w, h, ext)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		dc := draw.New(c)
		main.Draw(draw.Crop(dc, 0, -sideW, 0, 0))
		side.Draw(draw.Crop(dc, w-sideW, 0, h/8, -h/8))
		f, err := os.Create(filepath.Join(dir, name+"."+ext))
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		_, werr := c.WriteTo(f)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("plot %s: %w", name, werr)
		}
	}
	return nil
}

// heatmap is method m's success rate per profile pair (nil: no cells).
func heatmap(m string, order []string, cells []*CellStats) *plot.Plot {
	idx := map[string]int{}
	for i, n := range order {
		idx[n] = i
	}
	g := grid{names: order, rate: map[[2]int]float64{}}
	have := false
	for i := range order {
		for j := range order {
			g.rate[[2]int{i, j}] = -1
		}
	}
	for _, c := range cells {
		if c.Cell.Topology != "two-nat" || c.Cell.Method != m || c.Cell.Case != "" {
			continue // unimpaired cells only: an impaired case would overwrite its cell
		}
		pa, pb := c.Cell.SideProfiles()
		a, b := idx[pa], idx[pb]
		g.rate[[2]int{a, b}], g.rate[[2]int{b, a}] = c.Rate(), c.Rate()
		have = true
	}
	if !have {
		return nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: success rate per profile pair (two-nat, unimpaired; grey: not run)", m)
	p.X.Label.Text, p.Y.Label.Text = "NAT-A profile", "NAT-B profile"
	hm := plotter.NewHeatMap(g, heatPalette(0, 1).Palette(64))
	hm.Min, hm.Max = 0, 1
	hm.NaN = color.Gray{Y: 200}
	hm.Underflow = color.Gray{Y: 230}
	p.Add(hm)
	var ticks []plot.Tick
	for i, n := range order {
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: n})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Tick.Label.Rotation = 1.2
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	// Annotate every cell with its rate.
	var labels plotter.XYLabels
	for i := range order {
		for j := range order {
			if r := g.rate[[2]int{i, j}]; r >= 0 {
				labels.XYs = append(labels.XYs, plotter.XY{X: float64(i) - 0.3, Y: float64(j) - 0.15})
				labels.Labels = append(labels.Labels, fmt.Sprintf("%.0f", r*100))
			}
		}
	}
	if l, err := plotter.NewLabels(labels); err == nil {
		p.Add(l)
	}
	return p
}

// plotSuccess: success per method with 95% Wilson intervals.
func plotSuccess(dir string, ms []*MethodStats) error {
	p := plot.New()
	p.Title.Text = "Success rate per method over all two-nat profile pairs (95% Wilson)"
	p.Y.Label.Text = "success rate"
	p.Y.Min, p.Y.Max = 0, 1
	var pts plotter.XYs
	var errs plotter.YErrors
	var ticks []plot.Tick
	for i, m := range ms {
		r := float64(m.Successes) / float64(m.N)
		pts = append(pts, plotter.XY{X: float64(i), Y: r})
		errs = append(errs, struct{ Low, High float64 }{r - m.Lo, m.Hi - r})
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: m.Method})
	}
	bars, err := plotter.NewBarChart(yValues(pts), vg.Points(22))
	if err != nil {
		return err
	}
	bars.Color = color.RGBA{R: 70, G: 120, B: 200, A: 255}
	p.Add(bars)
	eb := &plotter.YErrorBars{XYs: pts, YErrors: errs, LineStyle: plotter.DefaultLineStyle, CapWidth: vg.Points(6)}
	p.Add(eb)
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	return save(p, dir, "success-per-method", 8*vg.Inch, 4*vg.Inch)
}

// plotConnectCDF: connect-time distribution per method.
func plotConnectCDF(dir string, ms []*MethodStats) error {
	cdf := plot.New()
	cdf.Title.Text = "Connect time per method (successful two-nat trials)"
	cdf.X.Label.Text = "connect time (ms, log scale)"
	cdf.Y.Label.Text = "fraction of successes"
	cdf.X.Scale = plot.LogScale{}
	cdf.X.Tick.Marker = plot.LogTicks{Prec: -1}
	for i, m := range ms {
		if len(m.ConnectMs) == 0 {
			continue
		}
		xs := append([]float64(nil), m.ConnectMs...)
		sort.Float64s(xs)
		var line plotter.XYs
		for k, x := range xs {
			line = append(line, plotter.XY{X: max(x, 1), Y: float64(k+1) / float64(len(xs))})
		}
		l, err := plotter.NewLine(line)
		if err != nil {
			return err
		}
		l.Color = plotColor(i)
		l.Width = vg.Points(1.5)
		cdf.Add(l)
		cdf.Legend.Add(m.Method, l)
	}
	cdf.Legend.Top = false
	cdf.Legend.Left = false
	return save(cdf, dir, "connect-time-cdf", 8*vg.Inch, 5*vg.Inch)
}

// plotAttempts: attempts to success (auto tries methods in turn; single
// methods swap roles once).
func plotAttempts(dir string, ms []*MethodStats) error {
	ap := plot.New()
	ap.Title.Text = "Attempts until success (successful two-nat trials)"
	ap.Y.Label.Text = "attempt number of the winning attempt"
	var aticks []plot.Tick
	for i, m := range ms {
		if len(m.Attempts) == 0 {
			continue
		}
		box, err := plotter.NewBoxPlot(vg.Points(20), float64(i), plotter.Values(m.Attempts))
		if err != nil {
			return err
		}
		ap.Add(box)
		aticks = append(aticks, plot.Tick{Value: float64(i), Label: m.Method})
	}
	ap.X.Tick.Marker = plot.ConstantTicks(aticks)
	return save(ap, dir, "attempts-to-success", 8*vg.Inch, 4*vg.Inch)
}

func yValues(xys plotter.XYs) plotter.Values {
	v := make(plotter.Values, len(xys))
	for i, p := range xys {
		v[i] = p.Y
	}
	return v
}

func plotColor(i int) color.Color {
	cs := []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
		{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}, {188, 189, 34, 255}}
	return cs[i%len(cs)]
}

func writeThroughputPlot(dir string) error {
	var tr bench.ThroughputResult
	if !spec.ReadJSON(filepath.Join(filepath.Dir(dir), "throughput.json"), &tr) || len(tr.Rows) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Throughput over the same lab paths (%d MiB, median of %d)", tr.Bytes>>20, tr.Repetitions)
	p.X.Label.Text = "MB/s (receiver's rate)"
	var vals plotter.Values
	var ticks []plot.Tick
	for i, r := range tr.Rows {
		vals = append(vals, stats.Quantile(r.MBps, 0.5))
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: r.Path + ", " + r.Copy})
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(12))
	if err != nil {
		return err
	}
	bars.Horizontal = true // long labels read on the left, one per line
	p.Add(bars)
	p.X.Min, p.X.Max = 0, 1.05*slices.Max(vals)
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	return save(p, dir, "throughput", 8*vg.Inch, 6*vg.Inch)
}
