{
  "targets": [
    {
      "target_name": "evdispatch",
      "sources": ["evdispatch.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}
