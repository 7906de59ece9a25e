{
  "variables": {
    "with_dnnl%": "<!(node -p \"process.env.IRLENS_DNNL === undefined ? (require('fs').existsSync('/usr/include/dnnl.hpp') ? 1 : 0) : Number(process.env.IRLENS_DNNL === '1')\")"
  },
  "targets": [
    {
      "target_name": "irlens_native",
      "sources": ["native/irlens_native.cc", "native/winograd.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "/usr/include/openblas"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      # -fno-trapping-math: irlens never unmasks FP exceptions, so this changes no result; without it GCC keeps
      # the GELU and other select-heavy loops scalar ("control flow in loop"). -fno-math-errno: sqrt becomes the
      # correctly rounded instruction without an errno branch, so loops with it vectorise (Adam); no libm call
      # changes (glibc's vector math needs -ffast-math).
      "cflags_cc": ["-O3", "-march=native", "-fno-trapping-math", "-fno-math-errno", "-fopenmp", "-std=c++17"],
      "libraries": ["-lopenblas", "-fopenmp"],
      "conditions": [
        ["with_dnnl==1", { "defines": ["IRLENS_HAVE_DNNL"], "libraries": ["-ldnnl"] }]
      ]
    }
  ]
}
