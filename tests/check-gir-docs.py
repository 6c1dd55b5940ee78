#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# Fails, listing them, when public symbols in Elbus-1.0.gir have no
# documentation: classes, records, enums and their members, constants,
# callbacks, functions, constructors, methods, virtual methods,
# properties, signals, public record fields, parameters and non-void
# return values. Keeps the GIR (and so the API reference) fully documented.
#
# Usage: check-gir-docs.py path/to/Elbus-1.0.gir

import sys
import xml.etree.ElementTree as ET

CORE = 'http://www.gtk.org/introspection/core/1.0'
GLIB = 'http://www.gtk.org/introspection/glib/1.0'


def core(tag):
    return '{%s}%s' % (CORE, tag)


TYPES = {core(t): t for t in ('class', 'record', 'interface', 'enumeration',
                              'bitfield', 'union')}
TYPES['{%s}boxed' % GLIB] = 'boxed'
CALLABLES = {core(t): t for t in ('function', 'constructor', 'method',
                                  'virtual-method', 'callback')}
CALLABLES['{%s}signal' % GLIB] = 'signal'


def has_doc(element):
    doc = element.find(core('doc'))
    return doc is not None and (doc.text or '').strip() != ''


def check_callable(element, owner, missing):
    kind = CALLABLES[element.tag]
    name = '%s%s' % (owner + ('::' if kind == 'signal' else '.') if owner else '',
                     element.get('name'))
    if not has_doc(element):
        missing.append('%s %s' % (kind, name))
    params = element.find(core('parameters'))
    if params is not None:
        for param in params:
            if param.tag not in (core('parameter'), core('instance-parameter')):
                continue
            if not has_doc(param):
                missing.append('parameter %s of %s %s' % (param.get('name'), kind, name))
    ret = element.find(core('return-value'))
    if ret is not None:
        rtype = ret.find(core('type'))
        void = rtype is not None and rtype.get('name') == 'none'
        if not void and not has_doc(ret):
            missing.append('return value of %s %s' % (kind, name))


def check_type(element, missing):
    kind = TYPES[element.tag]
    name = element.get('name') or element.get('{%s}name' % GLIB)
    # GType-struct records (FooClass) are documented with their class
    if element.get('{%s}is-gtype-struct-for' % GLIB):
        return
    if not has_doc(element):
        missing.append('%s %s' % (kind, name))
    for child in element:
        if child.tag in CALLABLES:
            check_callable(child, name, missing)
        elif child.tag == core('member'):
            if not has_doc(child):
                missing.append('member %s.%s' % (name, child.get('name')))
        elif child.tag == core('property'):
            if not has_doc(child):
                missing.append('property %s:%s' % (name, child.get('name')))
        elif child.tag == core('field'):
            # private fields and the parent instance are not API
            if child.get('private') == '1' or kind == 'class':
                continue
            if not has_doc(child):
                missing.append('field %s.%s' % (name, child.get('name')))


def main(argv):
    if len(argv) != 2:
        print('usage: %s FILE.gir' % argv[0], file=sys.stderr)
        return 2
    namespace = ET.parse(argv[1]).getroot().find(core('namespace'))
    if namespace is None:
        print('%s: no <namespace>' % argv[1], file=sys.stderr)
        return 1

    missing = []
    checked = 0
    for element in namespace:
        if element.tag in TYPES:
            check_type(element, missing)
        elif element.tag in CALLABLES:
            check_callable(element, None, missing)
        elif element.tag == core('constant'):
            if not has_doc(element):
                missing.append('constant %s' % element.get('name'))
        else:
            continue
        checked += 1

    if missing:
        print('%s: %d undocumented public symbols:' % (argv[1], len(missing)))
        for what in missing:
            print('  ' + what)
        return 1
    print('%s: %d top-level symbols, all documented' % (argv[1], checked))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
