# The `leanseg` Python module (python/leanseg: ctypes over the runtime's C API). Installed into
# <prefix>/lib/python3/dist-packages (Debian's python3 searches it for /usr and /usr/local;
# for another prefix add it to PYTHONPATH). It finds libleanseg_runtime relative to itself.
set(LEANSEG_PYTHON_DIR "lib/python3/dist-packages" CACHE STRING "Install folder of the Python module, relative to the prefix")
file(RELATIVE_PATH LEANSEG_PY_LIB_RELATIVE "/prefix/${LEANSEG_PYTHON_DIR}/leanseg"
     "/prefix/${CMAKE_INSTALL_LIBDIR}/libleanseg_runtime.so.${PROJECT_VERSION_MAJOR}")
configure_file(python/leanseg/_library.py.in ${CMAKE_CURRENT_BINARY_DIR}/python/leanseg/_library.py @ONLY)
install(FILES python/leanseg/__init__.py ${CMAKE_CURRENT_BINARY_DIR}/python/leanseg/_library.py
        DESTINATION ${LEANSEG_PYTHON_DIR}/leanseg COMPONENT runtime)

# The build tree's copy (for ctest): the library comes from LEANSEG_RUNTIME_LIBRARY there.
configure_file(python/leanseg/__init__.py ${CMAKE_CURRENT_BINARY_DIR}/python/leanseg/__init__.py COPYONLY)
if(LEANSEG_BUILD_TESTS)
  # Debian's python3 (with python3-numpy from scripts/setup.sh), not whichever python3 is first on PATH.
  if(EXISTS /usr/bin/python3 AND NOT Python3_EXECUTABLE)
    set(Python3_EXECUTABLE /usr/bin/python3)
  endif()
  find_package(Python3 COMPONENTS Interpreter)
  if(Python3_Interpreter_FOUND)
    add_test(NAME Python.Module COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/python/test_leanseg.py)
    set_tests_properties(Python.Module PROPERTIES TIMEOUT 300 ENVIRONMENT
      "PYTHONPATH=${CMAKE_CURRENT_BINARY_DIR}/python;LEANSEG_RUNTIME_LIBRARY=$<TARGET_FILE:leanseg_runtime>;LEANSEG_CLI=$<TARGET_FILE:leanseg_cli>;LEANSEG_INFER=$<TARGET_FILE:leanseg_infer>;OMP_NUM_THREADS=2")
  endif()
endif()
