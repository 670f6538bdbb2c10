// V8 grows the young generation (new space) when most objects survive a
// scavenge, and start-up (loading and linking several hundred modules) is
// nearly all survivors: by the time the API serves, its two semi-spaces have
// grown from 1 to 16 MB each, ~10 MB of idle RSS that no load asked for.
// Growth is held at 1x while a server process starts and set back to V8's
// default (2x) once it serves, so load grows the young generation as before.
// (semi_space_growth_factor is read at each growth decision; measured on
// Node 20: idle API RSS 86 -> 77 MB, no change under load.)
import v8 from "node:v8";

const defaultGrowthFactor = 2;

export function holdYoungGenerationGrowth(): void {
  v8.setFlagsFromString("--semi-space-growth-factor=1");
}

export function releaseYoungGenerationGrowth(): void {
  v8.setFlagsFromString(`--semi-space-growth-factor=${defaultGrowthFactor}`);
}
