# Install rules, the CMake package (find_package(leanseg CONFIG): leanseg::runtime, and
# leanseg::leanseg for the LibTorch side), pkg-config for the runtime, and CPack's .deb.
#   cmake --install build --prefix P      then  find_package(leanseg CONFIG) with P in
#   CMAKE_PREFIX_PATH, or  pkg-config --cflags --libs leanseg-runtime  with P/lib/pkgconfig.
include(CMakePackageConfigHelpers)
set(LEANSEG_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/leanseg)

# Installed executables and the plugin find libleanseg_runtime.so beside them, not via
# LD_LIBRARY_PATH: bin/../lib, and lib/leanseg/.. for the plugin.
set_target_properties(leanseg_cli leanseg_infer PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
set_target_properties(leanseg_infer_images PROPERTIES INSTALL_RPATH "$ORIGIN/..")
set_target_properties(leanseg PROPERTIES EXPORT_NAME leanseg)
set_target_properties(leanseg_base PROPERTIES EXPORT_NAME base)
set_target_properties(leanseg_dnnl PROPERTIES EXPORT_NAME dnnl)

install(TARGETS leanseg_runtime EXPORT leansegRuntimeTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT development)
install(TARGETS leanseg leanseg_base leanseg_dnnl EXPORT leansegTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)
install(TARGETS leanseg_cli leanseg_infer RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(TARGETS leanseg_infer_images LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/leanseg COMPONENT runtime)
install(DIRECTORY include/leanseg DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT development)

install(EXPORT leansegRuntimeTargets NAMESPACE leanseg:: DESTINATION ${LEANSEG_CMAKE_DIR} COMPONENT development)
install(EXPORT leansegTargets NAMESPACE leanseg:: DESTINATION ${LEANSEG_CMAKE_DIR} COMPONENT development)
configure_package_config_file(cmake/leansegConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/leansegConfig.cmake
                              INSTALL_DESTINATION ${LEANSEG_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/leansegConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/leansegConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/leansegConfigVersion.cmake
        DESTINATION ${LEANSEG_CMAKE_DIR} COMPONENT development)

# pkg-config for C (and C++) programs that link the runtime only. The prefix is taken at install
# time (cmake --install --prefix P), so the file is written then.
install(CODE "
  set(prefix \"\${CMAKE_INSTALL_PREFIX}\")
  set(libdir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}\")
  set(includedir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_INCLUDEDIR}\")
  set(version \"${PROJECT_VERSION}\")
  configure_file(\"${CMAKE_CURRENT_SOURCE_DIR}/cmake/leanseg-runtime.pc.in\"
                 \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/leanseg-runtime.pc\" @ONLY)
  message(STATUS \"Installing: \$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/leanseg-runtime.pc\")
" COMPONENT development)

# cpack -G DEB (in build/): one package with the runtime, the commands, headers and the CMake
# package; its dependencies are Debian's packages the binaries link.
set(CPACK_PACKAGE_NAME leanseg)
set(CPACK_PACKAGE_VENDOR "leanseg")
set(CPACK_PACKAGE_CONTACT "leanseg developers <leanseg@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Train, compress, evaluate and deploy segmentation models on CPUs")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# leanseg-infer preloads LLVM's OpenMP runtime when present (src/util/openmp_wait_policy.c) and
# falls back to libgomp without it: recommended, not required (shlibdeps cannot see a preload).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS libomp5-14)
include(CPack)

if(LEANSEG_BUILD_TESTS)
  add_test(NAME Install.ConsumersBuildAgainstTheInstallTree
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/install/check_install.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(Install.ConsumersBuildAgainstTheInstallTree PROPERTIES TIMEOUT 600 ENVIRONMENT OMP_NUM_THREADS=2)
endif()
