# Installing and packaging: the daemon, its man page, the systemd units,
# QEMU's vhost-user description file and an example configuration
# (cmake --install), a Debian package of the same (cpack -G DEB), and the
# ctests that lint the man page and verify the units.
#
# The units and the JSON file name the installed binary by its absolute
# path, and that path is known only when installing (cmake --install
# --prefix, CPack's /usr): they are configured then, by
# install_configured.cmake, never at configure time.
include(GNUInstallDirs)

set(VPORTFS_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "systemd system units: relative to the install prefix, or absolute")
set(VPORTFS_DEB_MAINTAINER
    "vportfs maintainers <maintainers@users.noreply.h-seed-a4a711d8.example>"
    CACHE STRING "The Maintainer field of the Debian package")

install(TARGETS vportfs RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The simulated frontend is a test tool: only on request
# (cmake --install BUILD --component sim), never in the package.
install(TARGETS vportfs-sim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT sim EXCLUDE_FROM_ALL)

# The man page: mdoc written by hand, its version filled in here; gzip -n
# (no name, no time stamp) for the package, as Debian's policy asks.
configure_file(${PROJECT_SOURCE_DIR}/docs/vportfs.1.in
               ${PROJECT_BINARY_DIR}/vportfs.1 @ONLY)
find_program(GZIP_EXECUTABLE gzip REQUIRED)
add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/vportfs.1.gz
  COMMAND ${GZIP_EXECUTABLE} -9 -n -k -f ${PROJECT_BINARY_DIR}/vportfs.1
  DEPENDS ${PROJECT_BINARY_DIR}/vportfs.1
  COMMENT "Compressing the man page"
  VERBATIM)
add_custom_target(man ALL DEPENDS ${PROJECT_BINARY_DIR}/vportfs.1.gz)
install(FILES ${PROJECT_BINARY_DIR}/vportfs.1.gz
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# Units and QEMU's description file, configured for the prefix installed to.
install(CODE "
  set(VPORTFS_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
  set(VPORTFS_BINARY_DIR \"${PROJECT_BINARY_DIR}\")
  set(VPORTFS_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(VPORTFS_DATADIR \"${CMAKE_INSTALL_DATADIR}\")
  set(VPORTFS_SYSTEMD_UNITDIR \"${VPORTFS_SYSTEMD_UNITDIR}\")")
install(SCRIPT ${PROJECT_SOURCE_DIR}/cmake/install_configured.cmake)

install(FILES README.md docs/chardev.md docs/semantics.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES examples/vm1.conf
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# cpack -G DEB in the build directory: vportfs_VERSION_ARCH.deb.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME vportfs)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "virtio-serial ports of a virtual machine as files")
# The Description's body; CPack puts the summary above it and indents it.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"vportfs is a virtual machine's virtio-serial device (virtio-console,
multiport), served to the VMM (QEMU, crosvm, User-Mode-Linux) over
vhost-user.  It mounts one FUSE directory per VM with one file per port:
cat, echo, dd, poll and shell redirection on a port file behave as a
guest program's /dev/virtio-ports/NAME does.  Ports can also be served by
QEMU-style chardevs (sockets, pipes, files, logs, ptys).")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${VPORTFS_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# The shared libraries' packages from dpkg-shlibdeps; fuse3 for
# fusermount3, with which libfuse mounts when vportfs is not root.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3")
set(CPACK_STRIP_FILES ON)
# make package_source: the sources, not the build directories beside them.
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/" "__pycache__")
include(CPack)

# The man page, linted as mandoc reads it: any warning or error fails.
# (Style messages are left out: they depend on which other manuals the
# machine has, "referenced manual not found".)
if(VPORTFS_TESTS)
  find_program(MANDOC_EXECUTABLE mandoc)
  find_program(SYSTEMD_ANALYZE_EXECUTABLE systemd-analyze)
  add_test(NAME man_page_lint
    COMMAND ${CMAKE_COMMAND}
            "-DCOMMAND=${MANDOC_EXECUTABLE}|-T|lint|-W|warning|${PROJECT_BINARY_DIR}/vportfs.1"
            -P ${PROJECT_SOURCE_DIR}/cmake/check_silent.cmake)
  set_tests_properties(man_page_lint PROPERTIES TIMEOUT 60)

  # The units as installed, but naming the binary of this build (verify
  # checks that ExecStart= is an executable), instantiated as vm1.
  # systemd-analyze needs no running systemd; it reports unknown or
  # misspelled settings only on stderr, hence check_silent.
  set(BINDIR ${PROJECT_BINARY_DIR})
  configure_file(${PROJECT_SOURCE_DIR}/systemd/vportfs@.service
                 ${PROJECT_BINARY_DIR}/systemd-verify/vportfs@.service @ONLY)
  configure_file(${PROJECT_SOURCE_DIR}/systemd/vportfs@.socket
                 ${PROJECT_BINARY_DIR}/systemd-verify/vportfs@.socket @ONLY)
  unset(BINDIR)
  add_test(NAME systemd_units_verify
    COMMAND ${CMAKE_COMMAND}
            "-DCOMMAND=${SYSTEMD_ANALYZE_EXECUTABLE}|verify|--man=no|${PROJECT_BINARY_DIR}/systemd-verify/vportfs@vm1.service|${PROJECT_BINARY_DIR}/systemd-verify/vportfs@vm1.socket"
            -P ${PROJECT_SOURCE_DIR}/cmake/check_silent.cmake)
  set_tests_properties(systemd_units_verify PROPERTIES TIMEOUT 60)
endif()
