#!/usr/bin/env python3
"""embed_cl.py SRC OUT NAME: writes OUT, a C file defining `const char NAME[]` (SRC's bytes,
NUL-terminated) and `const size_t NAME_len` (without the NUL), so a library carries its
OpenCL source without reading files at run time."""
import sys


def main():
    src, out, name = sys.argv[1:4]
    data = open(src, 'rb').read()
    lines = ['/* Generated from %s by embed_cl.py: do not edit. */' % src.split('/')[-1],
             '#include <stddef.h>',
             'extern const char %s[];' % name,
             'extern const size_t %s_len;' % name,
             'const char %s[] = {' % name]
    for i in range(0, len(data), 16):
        lines.append('\t' + ' '.join('0x%02x,' % b for b in data[i:i + 16]))
    lines.append('\t0x00,')
    lines.append('};')
    lines.append('const size_t %s_len = %d;' % (name, len(data)))
    with open(out, 'w') as f:
        f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
