package sampling

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/models"
)

// KLUBGrid holds the Align Your Steps objective (Sabour et al., arXiv 2404.14507) of one model on a
// grid of candidate times. AYS bounds the KL divergence between the continuous reverse SDE and
// its discretisation by a first-order solver (which freezes the denoiser D at the start t_i of
// each step) by Girsanov's theorem (paper eq. 9–10); in EDM's coordinates (σ = σ/α) that bound is
//
//	KLUB = Σ_i ∫_{σ_{i+1}}^{σ_i} E‖D(x_σ, σ) − D(x_{σ_i}, σ_i)‖² / σ³ dσ,
//
// with x_σ = x0 + σ·ε along one forward path (shared x0, ε). Since dσ/σ³ = −½ d(SNR) with
// SNR = α²/σ², each step's term is ½∫ Dist d(SNR), finite at t_max even where α = 0. The last
// evaluation is pinned at t_min (σ = sigma_min, the paper's fixed endpoint) and the final jump to
// t = 0 is not counted.
//
// Here the integral is a trapezoid rule over the grid, and instead of the paper's iterative
// coordinate refinement the optimum over the grid is found exactly by dynamic programming.
type KLUBGrid struct {
	T    []float64   // grid times, descending: T[0] = t_max, T[G−1] = t_min
	SNR  []float64   // α²/σ² at T (increasing)
	Dist [][]float64 // Dist[a][g−a] = E‖D(T[g]) − D(T[a])‖² for g ≥ a (per image, summed over pixels)
	cost [][]float64 // cost[a][b−a]: the KLUB term of a step frozen at a, covering [T[b], T[a]]
}

// NewKLUBGrid prepares the costs from the grid and the distance function dist(a, g), g ≥ a.
func NewKLUBGrid(sched models.Schedule, times []float64, dist func(a, g int) float64) (*KLUBGrid, error) {
	for i := 1; i < len(times); i++ {
		if !(times[i] < times[i-1]) || times[i] <= 0 {
			return nil, fmt.Errorf("klub grid: times must decrease strictly and stay above 0 (%g then %g)", times[i-1], times[i])
		}
	}
	g := len(times)
	k := &KLUBGrid{T: times, SNR: make([]float64, g), Dist: make([][]float64, g), cost: make([][]float64, g)}
	for i, t := range times {
		alpha, sigma := sched.AlphaSigma(t)
		k.SNR[i] = alpha * alpha / (sigma * sigma)
	}
	for a := range g {
		k.Dist[a] = make([]float64, g-a)
		for j := a; j < g; j++ {
			k.Dist[a][j-a] = dist(a, j)
		}
		k.cost[a] = make([]float64, g-a)
		for j := a + 1; j < g; j++ { // running trapezoid: ½ ∫ Dist dSNR
			k.cost[a][j-a] = k.cost[a][j-1-a] + 0.25*(k.Dist[a][j-1-a]+k.Dist[a][j-a])*(k.SNR[j]-k.SNR[j-1])
		}
	}
	return k, nil
}

// Cost is the KLUB term of one step whose denoiser is frozen at grid point a, covering down to b > a.
func (k *KLUBGrid) Cost(a, b int) float64 { return k.cost[a][b-a] }

// KLUB of a schedule given as increasing grid indices of its evaluation times (knots[0] = 0 is
// t_max); the last step's term runs down to t_min (the grid's end).
func (k *KLUBGrid) KLUB(knots []int) float64 {
	total := 0.0
	for i, a := range knots {
		b := len(k.T) - 1
		if i+1 < len(knots) {
			b = knots[i+1]
		}
		total += k.Cost(a, b)
	}
	return total
}

// Optimize returns the n evaluation indices (0 = t_max first, G−1 = t_min last) of least KLUB,
// exactly over the grid (dynamic programming, O(n·G²)), and that KLUB.
func (k *KLUBGrid) Optimize(n int) ([]int, float64, error) {
	g := len(k.T)
	if n < 2 || n > g {
		return nil, 0, fmt.Errorf("klub: %d steps on a grid of %d times (need 2 ≤ steps ≤ grid)", n, g)
	}
	inf := math.Inf(1)
	best := make([][]float64, n) // best[m][j]: least KLUB with knot m at j
	from := make([][]int, n)
	for m := range best {
		best[m] = slices.Repeat([]float64{inf}, g)
		from[m] = make([]int, g)
	}
	best[0][0] = 0
	for m := 1; m < n; m++ {
		for j := m; j < g; j++ {
			for i := m - 1; i < j; i++ {
				if v := best[m-1][i] + k.Cost(i, j); v < best[m][j] {
					best[m][j], from[m][j] = v, i
				}
			}
		}
	}
	knots := make([]int, n)
	knots[n-1] = g - 1
	for m := n - 1; m > 0; m-- {
		knots[m-1] = from[m][knots[m]]
	}
	return knots, best[n-1][g-1], nil
}

// Refine is AYS's iterative refinement (arXiv 2404.14507, §3.3): starting from a baseline
// schedule's knots, each pass moves every evaluation time but the first (t_max) in turn to the grid
// point between its neighbours that minimizes the KLUB with the others held fixed (the paper does
// this with a line search per t_i). passes bounds the number of sweeps — the paper's early
// stopping, which keeps the schedule near a good initialization instead of the global optimum of an
// estimated bound; the sweep ends early when nothing moves. It returns the new knots and their KLUB.
func (k *KLUBGrid) Refine(init []int, passes int) ([]int, float64, error) {
	g := len(k.T)
	knots := slices.Clone(init)
	if len(knots) < 2 || knots[0] != 0 {
		return nil, 0, fmt.Errorf("klub refine: need >= 2 knots starting at t_max, got %v", init)
	}
	for i := 1; i < len(knots); i++ {
		if knots[i] <= knots[i-1] || knots[i] >= g {
			return nil, 0, fmt.Errorf("klub refine: knots must increase inside the grid, got %v", init)
		}
	}
	for range passes {
		moved := false
		for i := 1; i < len(knots); i++ {
			prev, end, last := knots[i-1], g-1, g-1 // the step at j covers [T[end], T[j]]; j ≤ last
			if i+1 < len(knots) {
				end, last = knots[i+1], knots[i+1]-1
			}
			arg := knots[i]
			best := k.Cost(prev, arg) + k.Cost(arg, end)
			for j := prev + 1; j <= last; j++ {
				if v := k.Cost(prev, j) + k.Cost(j, end); v < best*(1-1e-12) {
					best, arg = v, j
				}
			}
			if arg != knots[i] {
				knots[i], moved = arg, true
			}
		}
		if !moved {
			break
		}
	}
	return knots, k.KLUB(knots), nil
}

// KLUBTimes returns the grid for AYS: t_max, then gridSize−1 times evenly spaced in log-SNR from
// max(λ(t_max), −2·log σ_max) down to t_min = t(σ_min), merged with extra times (baseline
// schedules, so their KLUB is measured on the same grid), descending and without duplicates.
func KLUBTimes(sched models.Schedule, tMax, sigmaMin, sigmaMax float64, gridSize int, extra ...[]float64) []float64 {
	hi, lo := max(sched.LogSNR(tMax), -2*math.Log(sigmaMax)), -2*math.Log(sigmaMin)
	tMin := sched.TimeOfLogSNR(lo, tMax)
	ts := []float64{tMax}
	for i := 1; i < gridSize; i++ {
		ts = append(ts, sched.TimeOfLogSNR(hi+float64(i)/float64(gridSize-1)*(lo-hi), tMax))
	}
	for _, e := range extra {
		for _, t := range e {
			if t > tMin && t <= tMax {
				ts = append(ts, t)
			}
		}
	}
	slices.Sort(ts)
	slices.Reverse(ts)
	return slices.Compact(ts)
}

// Knots maps evaluation times (descending, without the final 0) to grid indices; every time must
// be on the grid.
func (k *KLUBGrid) Knots(times []float64) ([]int, error) {
	var knots []int
	for _, t := range times {
		i := slices.IndexFunc(k.T, func(g float64) bool { return math.Abs(g-t) < 1e-12 })
		if i < 0 {
			return nil, fmt.Errorf("klub: time %g is not on the grid", t)
		}
		knots = append(knots, i)
	}
	return knots, nil
}

// DenoiseAt returns the sampler's x̂0 (guided, clipped as configured) for x_t = α_t·x0 + σ_t·ε at
// time t: x0, eps [N, H, W, C]; classes [N]. Batched by the sampler's batch size.
func (s *Sampler) DenoiseAt(x0, eps []float32, classes []int32, t float64, h, w, c int) ([]float32, error) {
	per := h * w * c
	n := len(classes)
	if len(x0) != n*per || len(eps) != n*per {
		return nil, fmt.Errorf("denoise: %d and %d values for %d images of %dx%dx%d", len(x0), len(eps), n, h, w, c)
	}
	alpha, sigma := s.m.Den.Schedule.AlphaSigma(t)
	out := make([]float32, 0, n*per)
	for start := 0; start < n; start += s.cfg.BatchSize {
		end := min(start+s.cfg.BatchSize, n)
		bsz := end - start
		xt := make([]float32, bsz*per)
		for i := range xt {
			xt[i] = float32(alpha*float64(x0[start*per+i]) + sigma*float64(eps[start*per+i]))
		}
		b := &batchState{s: s, dims: []int{bsz, h, w, c},
			cond:  tensors.FromFlatDataAndDimensions(append([]int32(nil), classes[start:end]...), bsz),
			w:     tensors.FromScalar(float32(s.cfg.CFG)),
			zeros: tensors.FromFlatDataAndDimensions(make([]float32, bsz*per), bsz, h, w, c)}
		next, _, err := b.call(tensors.FromFlatDataAndDimensions(xt, bsz, h, w, c), t, nil, nil, coefs{0, 1, 0, 0, 0}, false)
		if err != nil {
			return nil, fmt.Errorf("denoise at t=%.4f: %w", t, err)
		}
		vals, err := tensors.CopyFlatData[float32](next)
		if err != nil {
			return nil, err
		}
		out = append(out, vals...)
	}
	return out, nil
}

// ModelKLUBGrid estimates the KLUB grid of a sampler's model from data images x0 [N, H, W, C] with
// their classes and one fixed noise per image (common random numbers across the grid, so the
// objective is smooth in the times).
func ModelKLUBGrid(s *Sampler, times []float64, x0 []float32, classes []int32, seeds []uint64, h, w, c int, progress func(done, total int)) (*KLUBGrid, error) {
	per := h * w * c
	n := len(classes)
	eps := make([]float32, 0, n*per)
	for _, seed := range seeds {
		eps = append(eps, NoiseForSeed(seed, per)...)
	}
	d := make([][]float32, len(times))
	for i, t := range times {
		var err error
		if d[i], err = s.DenoiseAt(x0, eps, classes, t, h, w, c); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(i+1, len(times))
		}
	}
	dist := func(a, g int) float64 {
		sum := 0.0
		for i, v := range d[a] {
			diff := float64(d[g][i] - v)
			sum += diff * diff
		}
		return sum / float64(n)
	}
	return NewKLUBGrid(s.m.Den.Schedule, times, dist)
}
