// Preloaded into CLI children by the bad-input suite: writes this process's peak RSS (KiB), CPU time and exit code to
// IRLENS_RSS_FILE at exit. A V8 fatal error skips exit handlers, so a missing file means the child died hard.
const fs = require('node:fs');
const file = process.env.IRLENS_RSS_FILE;
if (file) {
  process.on('exit', (code) => {
    try {
      const u = process.resourceUsage();
      fs.writeFileSync(file, JSON.stringify({ maxRssKiB: u.maxRSS, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000, code }));
    } catch {
      // the suite reports the missing measurement
    }
  });
}
