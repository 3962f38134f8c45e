/** A w×h mask drawing (src/core/chat/edits.ts MaskDrawing) painted where `paint(x, y)`, run-length coded as the web page codes it. */
export function maskDrawing(width: number, height: number, paint: (x: number, y: number) => boolean) {
  const runs: number[] = [];
  let current = false;
  let length = 0;
  for (let index = 0; index < width * height; index += 1) {
    const painted = paint(index % width, Math.floor(index / width));
    if (painted !== current) {
      runs.push(length);
      current = painted;
      length = 0;
    }
    length += 1;
  }
  runs.push(length);
  return { width, height, runs };
}
