package configs

import (
	"fmt"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/fewstep/fewstep/checkpoints"
	"github.com/fewstep/fewstep/distill"
	"github.com/fewstep/fewstep/export"
	"github.com/fewstep/fewstep/sampling"
	"github.com/fewstep/fewstep/trainer"
)

// ExportModel assembles the exported model (package export) of checkpoint `step` of the run in
// dir, whose resolved config is r and whose checkpoint tensors are ts: the EMA weights (raw: the
// trained /model weights), renamed to their path inside the network; the model, diffusion, data
// and sample sections; and, for a distilled run (its checkpoint holds /teacher weights), the
// student's timesteps (distill.Config.Times). A sample.schedule_file is inlined as the list
// spacing so that the file stands alone. Class names are left to the caller (they live in the
// dataset); Source.Version is left empty (export.Write records export.Version()).
func (r Run) ExportModel(dir checkpoints.RunDir, step int64, ts map[string]*tensors.Tensor, raw bool) (*export.Model, error) {
	scope := trainer.EMAScope
	if raw {
		scope = trainer.ModelScope
	}
	weights, err := export.FromCheckpoint(ts, scope)
	if err != nil {
		return nil, fmt.Errorf("%s step %d: %w", dir.CheckpointDir(), step, err)
	}
	distilled := false
	for name := range ts {
		if strings.HasPrefix(name, distill.TeacherScope+"/") {
			distilled = true
			break
		}
	}
	sc := r.Sample
	if sc.ScheduleFile != "" {
		sf, err := sampling.ReadScheduleFile(sc.ScheduleFile)
		if err != nil {
			return nil, fmt.Errorf("sample.schedule_file: %w", err)
		}
		if sf.Schedule != r.Diffusion.Schedule {
			return nil, fmt.Errorf("sample.schedule_file %s: schedule file is for the %s noise schedule, the model uses %s", sc.ScheduleFile, sf.Schedule, r.Diffusion.Schedule)
		}
		sc.Spacing, sc.Timesteps, sc.Steps, sc.ScheduleFile = "list", append([]float64(nil), sf.Times...), len(sf.Times), ""
	}
	section := map[string]any{}
	if err := mapstructure.Decode(sc, &section); err != nil {
		return nil, err
	}
	m := &export.Model{
		Model: r.Model, Diffusion: r.Diffusion, Data: r.Data,
		Sample:    export.Sampling{Sampler: sc.Sampler, Steps: sc.Steps, CFG: sc.CFG, Spacing: sc.Spacing, Section: section},
		Distilled: distilled,
		Source:    export.Source{Run: string(dir), Step: step, Weights: scope},
		Tensors:   weights,
	}
	if distilled {
		m.StudentTimes = r.StudentTimes()
	}
	return m, nil
}
