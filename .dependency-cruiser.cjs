/**
 * The layering of src/ (docs/ARCHITECTURE.md, "Layers"), checked by `npm run lint:deps`:
 * each layer imports only from the layers below it, and nothing imports in a cycle.
 */
const layer = (name, path, mayImport, comment) => ({
  name,
  comment,
  severity: 'error',
  from: { path },
  to: { path: '^src/', pathNot: mayImport },
});

module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', comment: 'an import cycle', from: {}, to: { circular: true } },
    layer('core-is-pure', '^src/core/', '^src/core/', 'core/ is the semantics: it imports nothing outside core/'),
    {
      name: 'ffi-in-sys-only',
      severity: 'error',
      comment: 'koffi is bound in sys/ only: the layers above call sys/, never koffi',
      from: { pathNot: '^src/sys/' },
      to: { path: '^node_modules/koffi/' },
    },
    {
      ...layer('sys-is-the-bottom', '^src/sys/', '^src/(sys/|core/errors\\.ts$)', 'sys/ binds the OS: of ours it raises ReactorError and names core types, nothing more'),
      to: { path: '^src/', pathNot: '^src/(sys/|core/errors\\.ts$)', dependencyTypesNot: ['type-only'] },
    },
    layer('backends-stand-on-core-and-sys', '^src/backends/', '^src/(backends|core|sys)/', 'a backend implements core/backend.ts on sys/'),
    layer('net-stands-on-core-and-sys', '^src/net/', '^src/(net|core|sys)/', 'net/ is TCP over sys/, with core/ errors and checks'),
    layer('loop-stands-on-core-and-sys', '^src/loop/', '^src/(loop|core|sys)/', "loop/ drives core's LoopSource from Node's loop"),
    layer(
      'composition-below-workers',
      '^src/reactor\\.ts$',
      '^src/(core|sys|backends|loop)/',
      'src/reactor.ts picks the backend and wires the loop; it knows no workers or net',
    ),
    layer('workers-stand-on-the-reactor', '^src/workers/', '^src/(workers/|core/|reactor\\.ts$)', 'workers/ runs threads on a whole Reactor'),
    {
      name: 'src-is-self-contained',
      severity: 'error',
      comment: 'the package ships src/ alone: nothing in it imports tests, benchmarks or examples',
      from: { path: '^src/' },
      to: { path: '^(test|bench|examples)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^(src|node_modules/koffi)',
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
