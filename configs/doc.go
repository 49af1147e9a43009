// Package configs composes the typed run config from each package's Config, ships the preset YAML
// files inside the binary (go:embed), and loads a run from a preset name or a path with
// environment (FEWSTEP_<SECTION>_<KEY>) and command-line (-set section.key=value) overrides.
//
// Every mistake — unknown key, wrong type, fractional integer, non-positive size, unknown enum
// value — is an *Error naming the source (file, environment variable or -set flag) and the key;
// the CLI maps it to exit code 2.
package configs
