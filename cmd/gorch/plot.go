package main

import (
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Charts are drawn with gonum.org/v1/plot: maintained, pure Go (no cgo),
// axes, ticks, legend and dashes done for us, and PNG and SVG from one code
// path. Its cost is binary size: it embeds the Liberation fonts, and the
// gorch binary grows from 8.4 MB to 16 MB (measured with Go 1.26, linux/amd64).

// writePlot draws series as lines of metric against step and writes the
// chart to path atomically in format ("png" or "svg"), width×height inches.
func writePlot(path, format, metric string, series []plotSeries, width, height float64) error {
	p := plot.New()
	p.Title.Text = metric
	p.X.Label.Text = "step"
	p.Y.Label.Text = metric
	p.Add(plotter.NewGrid())
	var first, last float64
	for i, s := range series {
		xys := make(plotter.XYs, len(s.pts))
		for j, pt := range s.pts {
			xys[j] = plotter.XY{X: float64(pt.step), Y: pt.value}
		}
		first += s.pts[0].value
		last += s.pts[len(s.pts)-1].value
		line, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
		line.Width = vg.Points(1.5)
		p.Add(line)
		thumbs := []plot.Thumbnailer{line}
		if len(s.pts) < 20 { // few points: mark them, or a lone point is invisible
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return err
			}
			sc.Color = line.Color
			sc.Shape = draw.CircleGlyph{}
			sc.Radius = vg.Points(2.5)
			p.Add(sc)
			thumbs = append(thumbs, sc)
		}
		p.Legend.Add(s.label, thumbs...)
	}
	// Put the legend where the curves are not: at the top when they fall
	// (a loss), at the bottom when they rise (an accuracy).
	p.Legend.Top = last < first
	p.Legend.Padding = vg.Points(4)
	wt, err := p.WriterTo(vg.Length(width)*vg.Inch, vg.Length(height)*vg.Inch, format)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
}
