# Run by cmake --install and by CPack (install.cmake sets the VPORTFS_*
# variables before): writes the systemd units and QEMU's vhost-user
# description file for the prefix being installed to, so that each names
# the binary where this very install puts it, then installs them.
# file(INSTALL) adds DESTDIR and records the files in the manifest.
function(vportfs_under_prefix dir out)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

vportfs_under_prefix("${VPORTFS_BINDIR}" BINDIR)
vportfs_under_prefix("${VPORTFS_SYSTEMD_UNITDIR}" unitdir)
vportfs_under_prefix("${VPORTFS_DATADIR}/qemu/vhost-user" qemudir)
set(VPORTFS_BINARY "${BINDIR}/vportfs")

# One staging dir per destination: an install to another prefix (CPack's
# after a test's) never picks up the other's files.
string(MD5 tag "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
set(stage "${VPORTFS_BINARY_DIR}/install-configured/${tag}")
foreach(unit vportfs@.service vportfs@.socket)
  configure_file("${VPORTFS_SOURCE_DIR}/systemd/${unit}" "${stage}/${unit}"
                 @ONLY)
endforeach()
configure_file(
  "${VPORTFS_SOURCE_DIR}/share/qemu/vhost-user/50-vportfs.json.in"
  "${stage}/50-vportfs.json" @ONLY)

file(INSTALL DESTINATION "${unitdir}" TYPE FILE
     FILES "${stage}/vportfs@.service" "${stage}/vportfs@.socket")
file(INSTALL DESTINATION "${qemudir}" TYPE FILE
     FILES "${stage}/50-vportfs.json")
