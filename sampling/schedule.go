package sampling

// UniformTimes returns n+1 times evenly spaced from tMax down to 0 (the "uniform"/"linspace"
// spacing): t_0 = tMax > t_1 > … > t_n = 0. Host floats; a step goes from t_i to t_{i+1}.
func UniformTimes(n int, tMax float64) []float64 {
	ts := make([]float64, n+1)
	for i := range ts {
		ts[i] = tMax * float64(n-i) / float64(n)
	}
	return ts
}
